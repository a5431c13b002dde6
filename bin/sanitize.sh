#!/usr/bin/env bash
# Runs the library under dynamic checkers and prints what each one found:
#
#   bin/sanitize.sh [--quick]
#
# 1. valgrind memcheck on the tools (cptofs, cpfromfs, fs2tar), lkl-boot
#    and a hijacked python3 doing socket and disk work. Invalid accesses,
#    uses of undefined values and definite leaks count as reports. What it
#    cannot see: the kernel's own allocator (slab pages inside the kernel's
#    RAM region, one mmap valgrind takes as a single defined block), so a
#    use-after-free or overflow between two kernel objects is invisible;
#    it does see the kernel reading or writing host memory out of bounds
#    (that is how the 4 KiB over-read of mount options was found).
#    bin/valgrind.supp explains each suppression.
# 2. helgrind and DRD on lkl-boot. They understand pthread mutexes,
#    condition variables, semaphores and create/join, but not raw futexes:
#    the host layer's semaphores and the CPU lock that hands the one
#    virtual CPU between threads are futexes, and so are Rust's std Mutex,
#    Condvar and Once on Linux. So every kernel data structure touched by
#    two host threads (all of them: the CPU moves between threads) and
#    every Rust lock shows up as a "race". Their reports are counted and
#    classified, not gated on; see the text printed at the end.
# 3. AddressSanitizer: the Rust code built with -Zsanitizer=address
#    (RUSTC_BOOTSTRAP=1 on the stable toolchain) into its own target dir;
#    the kernel object (C, built by kernel/build.sh) is not instrumented.
#    Runs cptofs, lkl-boot, and a hijacked python3 with the instrumented
#    preload library (GCC's libasan preloaded ahead of it).
#
# Exits 1 if memcheck or ASan reported anything. Without valgrind nothing
# runs: it says so and exits 0, or 1 under CI (CI=true).
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
quick=0
[ "${1:-}" = --quick ] && quick=1
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target}
rel=$CARGO_TARGET_DIR/release
if ! command -v valgrind >/dev/null; then
	echo "sanitize: valgrind is not installed (apt-get install valgrind): memcheck, helgrind, DRD skipped" >&2
	case ${CI:-} in "" | 0 | false) exit 0 ;; *) exit 1 ;; esac
fi
cargo build --release --quiet --workspace --bins || exit 1
work=$(mktemp -d /tmp/lkl-sanitize.XXXXXX)
trap 'chattr -i "$work"/* 2>/dev/null; rm -rf "$work"' EXIT
truncate -s 32M "$work/fs.img" && mkfs.ext4 -q -F "$work/fs.img"
head -c 300000 /dev/urandom >"$work/in.bin"
failed=0

memcheck() { # NAME CMD...
	local name=$1
	shift
	local log="$work/mc-$name.log"
	local opts=()
	while [ "${1:-}" != "${1#--}" ]; do opts+=("$1"); shift; done
	valgrind "${opts[@]}" --suppressions="$root/bin/valgrind.supp" --error-exitcode=99 \
		--leak-check=full --errors-for-leak-kinds=definite --show-leak-kinds=definite \
		--log-file="$log" "$@" >/dev/null 2>&1
	local rc=$?
	local errs
	# With --trace-children, one summary per process: add them up.
	errs=$(sed -n 's/.*ERROR SUMMARY: \([0-9]*\) errors.*/\1/p' "$log" | awk '{s+=$1} END {print s+0}')
	local supp
	supp=$(sed -n 's/.*(suppressed: \([0-9]*\) from.*/\1/p' "$log" | awk '{s+=$1} END {print s+0}')
	echo "memcheck $name: ${errs:-?} reports (${supp:-0} suppressed, see bin/valgrind.supp), exit $rc"
	if [ "${errs:-1}" != 0 ]; then
		failed=1
		grep -A12 "Invalid\|uninitialised\|definitely lost" "$log" | head -40 >&2
	fi
}

echo "== valgrind memcheck"
memcheck cptofs "$rel/cptofs" -t ext4 -i "$work/fs.img" "$work/in.bin" /
memcheck cpfromfs "$rel/cpfromfs" -t ext4 -i "$work/fs.img" /in.bin "$work/out.bin"
cmp -s "$work/in.bin" "$work/out.bin" || { echo "memcheck cpfromfs: copy differs" >&2; failed=1; }
memcheck fs2tar "$rel/fs2tar" -t ext4 "$work/fs.img" "$work/fs.tar"
memcheck lkl-boot "$rel/lkl-boot"
# A hijacked python3: sockets on the kernel's loopback and files on a disk.
# PYTHONMALLOC=malloc so memcheck sees Python's objects (pymalloc arenas
# look like reads of undefined memory).
cat >"$work/cfg.json" <<EOF
{"disks":[{"image":"$work/fs.img","fstype":"ext4","mount":"/d"}]}
EOF
cat >"$work/prog.py" <<'EOF'
import os, socket, threading
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(4)
def serve():
    c, _ = s.accept()
    while True:
        b = c.recv(65536)
        if not b: break
        c.sendall(b)
    c.close()
t = threading.Thread(target=serve); t.start()
c = socket.create_connection(s.getsockname())
data = os.urandom(200000); got = b""
c.sendall(data)
while len(got) < len(data): got += c.recv(65536)
c.close(); t.join(); assert got == data
with open("/d/py.bin", "wb") as f: f.write(data); f.flush(); os.fsync(f.fileno())
assert open("/d/py.bin", "rb").read() == data
print("ok")
EOF
# The preload goes to the program only (not valgrind's launcher): through env,
# followed into by --trace-children.
memcheck hijacked-python --trace-children=yes /usr/bin/env LKL_HIJACK_CONFIG_FILE="$work/cfg.json" \
	PYTHONMALLOC=malloc LD_PRELOAD="$rel/liblkl_hijack.so" /usr/bin/python3 "$work/prog.py"

threads() { # TOOL
	local tool=$1 log="$work/$1.log"
	valgrind --tool="$tool" --log-file="$log" "$rel/lkl-boot" >/dev/null 2>&1
	local errs kernel host
	errs=$(sed -n 's/.*ERROR SUMMARY: \([0-9]*\) errors from \([0-9]*\) contexts.*/\1 in \2 contexts/p' "$log" | tail -1)
	# Classify by the top frame of each report: Rust host code, or kernel C.
	host=$(grep -A2 "Possible data race\|Conflicting \(load\|store\)" "$log" | grep -c " at 0x.*\(lkl::\|std::\|core::\|alloc::\)")
	kernel=$(grep -cE "Possible data race|Conflicting (load|store)" "$log")
	echo "$tool lkl-boot: ${errs:-?}; of the (first 1000) race contexts shown, $((kernel - host)) have their top frame in kernel code, $host in Rust (std locks are futexes)"
}
echo "== helgrind / DRD (not gated: they cannot see futex hand-offs)"
threads helgrind
threads drd

echo "== AddressSanitizer"
asan_dir=${CARGO_TARGET_DIR}-asan
if RUSTC_BOOTSTRAP=1 RUSTFLAGS=-Zsanitizer=address CARGO_TARGET_DIR=$asan_dir \
	cargo build --release --quiet --target x86_64-unknown-linux-gnu -p lkl-tools --bin cptofs --bin lkl-boot \
	>"$work/asan-build.log" 2>&1; then
	a=$asan_dir/x86_64-unknown-linux-gnu/release
	for run in "cptofs -t ext4 -i $work/fs.img $work/in.bin /asan.bin" "lkl-boot"; do
		if ASAN_OPTIONS=detect_leaks=1 $a/$run >"$work/asan.out" 2>&1; then
			echo "asan ${run%% *}: 0 reports"
		else
			echo "asan ${run%% *}: FAILED"
			grep -A20 "ERROR: AddressSanitizer\|LeakSanitizer" "$work/asan.out" | head -40 >&2
			failed=1
		fi
	done
	# The hijack library under ASan: Rust links the ASan runtime into
	# executables only, so for the preloaded cdylib GCC's libasan goes
	# first in LD_PRELOAD (same interface); leaks of Python's own objects
	# and one known host-layer leak are suppressed (bin/lsan.supp).
	libasan=$(gcc -print-file-name=libasan.so 2>/dev/null)
	if RUSTC_BOOTSTRAP=1 RUSTFLAGS=-Zsanitizer=address CARGO_TARGET_DIR=$asan_dir \
		cargo build --release --quiet --target x86_64-unknown-linux-gnu -p lkl-hijack-preload \
		>>"$work/asan-build.log" 2>&1 && [ -f "$libasan" ]; then
		if env LKL_HIJACK_CONFIG_FILE="$work/cfg.json" PYTHONMALLOC=malloc \
			ASAN_OPTIONS=detect_leaks=1 LSAN_OPTIONS=suppressions="$(pwd)/bin/lsan.supp" \
			LD_PRELOAD="$libasan:$a/liblkl_hijack.so" /usr/bin/python3 "$work/prog.py" >"$work/asan.out" 2>&1; then
			echo "asan hijacked-python: 0 reports"
		else
			echo "asan hijacked-python: FAILED"
			grep -A20 "ERROR: AddressSanitizer\|LeakSanitizer" "$work/asan.out" | head -40 >&2
			failed=1
		fi
	else
		echo "asan hijacked-python: no instrumented library or no libasan (gcc); not run"
	fi
else
	echo "asan: the instrumented build failed (see below); not run"
	tail -5 "$work/asan-build.log"
fi
[ $quick = 1 ] || true
exit $failed
