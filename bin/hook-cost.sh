#!/usr/bin/env bash
# What the hijack's hook adds to a call on a host descriptor, counted in
# instructions (wall-clock noise here is larger than the cost): a C
# program does N 1-byte reads of /dev/zero under callgrind, plain and with
# liblkl_hijack.so preloaded; main()'s inclusive instruction count per
# read is compared. Target: under 100 extra instructions per call.
# The difference is an upper bound: the hijacked process has threads (the
# kernel's), so glibc's read also takes its multi-threaded cancellation
# path; the hook's own share is printed from its inclusive cost minus libc
# read's.
#
#   bin/hook-cost.sh [N]          (needs valgrind and a C compiler)
set -euo pipefail
n=${1:-100000}
here=$(cd "$(dirname "$0")/.." && pwd)
lib=${LKL_HIJACK_LIB:-}
if [ -z "$lib" ]; then
	for c in "${CARGO_TARGET_DIR:-$here/target}/release/liblkl_hijack.so" "$here/target/release/liblkl_hijack.so"; do
		if [ -f "$c" ]; then lib=$c; break; fi
	done
fi
[ -n "$lib" ] && [ -f "$lib" ] || { echo "hook-cost.sh: liblkl_hijack.so not found (cargo build --release -p lkl-hijack-preload, or set LKL_HIJACK_LIB)" >&2; exit 1; }
command -v valgrind >/dev/null || { echo "hook-cost.sh: valgrind is not installed (apt-get install valgrind)" >&2; exit 1; }
cc=${CC:-cc}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat >"$work/r.c" <<'C'
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>
int main(int argc, char **argv)
{
	int n = atoi(argv[1]), fd = open("/dev/zero", O_RDONLY);
	char c;
	for (int i = 0; i < n; i++)
		if (read(fd, &c, 1) != 1)
			return 1;
	return 0;
}
C
"$cc" -O2 -o "$work/r" "$work/r.c"
main_ir() { # callgrind output -> main's inclusive Ir
	callgrind_annotate --inclusive=yes "$1" 2>/dev/null |
		awk '/:main \[/ && !done { gsub(",", "", $1); print $1; done = 1 }'
}
(cd "$work" && valgrind --tool=callgrind --callgrind-out-file="$work/plain.out" ./r "$n" >/dev/null 2>&1)
(cd "$work" && env -u LKL_HIJACK_CONFIG_FILE LD_PRELOAD="$lib" valgrind --tool=callgrind --callgrind-out-file="$work/hijack.out" ./r "$n" >/dev/null 2>&1)
fn_ir() { # callgrind output, function pattern -> inclusive Ir
	callgrind_annotate --inclusive=yes "$1" 2>/dev/null |
		awk -v pat="$2" '$0 ~ pat && !done { gsub(",", "", $1); print $1; done = 1 }'
}
plain=$(main_ir "$work/plain.out")
hook=$(fn_ir "$work/hijack.out" "hijack/fd/rw.rs:read( \\[|$)")
libc_read=$(fn_ir "$work/hijack.out" "read.c:read \\[")
hijack=$(main_ir "$work/hijack.out")
awk -v p="$plain" -v h="$hijack" -v k="${hook:-0}" -v l="${libc_read:-0}" -v n="$n" 'BEGIN {
	printf "1-byte read of /dev/zero, %d calls, instructions per call in main():\n", n
	printf "  host libc:        %.1f\n", p / n
	printf "  under the hijack: %.1f\n", h / n
	printf "  added: %.1f (target < 100), of which the hook itself: %.1f\n", (h - p) / n, (k - l) / n
}'
