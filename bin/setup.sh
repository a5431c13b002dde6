#!/usr/bin/env bash
# Installs what is missing (Debian packages, as root via apt-get), builds the
# kernel library with visible progress, then runs the main job: boots Linux
# inside a process (lkl-boot), and runs the real ping with its sockets in a
# Linux kernel in user space (bin/lkl-hijack.sh: a kernel server for ping's
# process tree).
#
#   bin/setup.sh [--no-run]
#   bin/setup.sh --prefix DIR [--no-build]
#   bin/setup.sh --help
#
# --prefix DIR builds (cargo, release; --no-build installs what is built)
# and installs as a library is installed: DIR/bin/lkl-hijack.sh and the
# tools (cptofs cpfromfs fs2tar lklfuse net-test lkl-boot),
# DIR/lib/liblkl-hijack.so (and liblkl_hijack.so), DIR/lib/liblkl.so and
# liblkl.a (LKL's C API), DIR/include/lkl.h, lkl_host.h and lkl/ (the
# kernel's headers), DIR/lib/pkgconfig/lkl.pc (pkg-config --cflags --libs
# lkl), DIR/share/man/man1 (the tools' --help as man pages). It installs
# no Debian package. CARGO_TARGET_DIR is honoured.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() { sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; }

# The tools, as cargo builds them and as they are installed.
tools=(cptofs cpfromfs fs2tar lklfuse net-test lkl-boot)

# Writes DIR/share/man/man1/TOOL.1 from TOOL --help.
man_page() {
	local tool=$1 dest=$2 help summary
	help=$("$dest/bin/$tool" --help 2>&1) || true
	summary=$(printf '%s\n' "$help" | sed -n '1{s/^[Uu]sage: *//;p}')
	{
		printf '.TH %s 1 "" "lkl-hijack" "User Commands"\n' "$(printf '%s' "$tool" | tr '[:lower:]' '[:upper:]')"
		printf '.SH NAME\n%s \\- a tool of lkl-hijack (Linux as a library)\n' "$tool"
		printf '.SH SYNOPSIS\n.nf\n%s\n.fi\n' "$(printf '%s' "$summary" | sed 's/\\/\\e/g')"
		printf '.SH DESCRIPTION\nThe text of\n.B %s --help\n.PP\n.nf\n' "$tool"
		# Backslashes escaped; a line starting with . or ' is text, not a request.
		printf '%s\n' "$help" | sed -e 's/\\/\\e/g' -e "s/^\([.']\)/\\\\\&\1/"
		printf '.fi\n'
	} > "$dest/share/man/man1/$tool.1"
}

install_prefix() {
	local dest=$1 build=$2 target rel
	[ -n "$dest" ] || { echo "setup: --prefix needs a DIR" >&2; exit 2; }
	mkdir -p "$dest"
	dest=$(cd "$dest" && pwd)
	target=${CARGO_TARGET_DIR:-target}
	rel=$target/release
	if [ "$build" = 1 ]; then
		command -v cargo >/dev/null || { echo "setup: cargo not found: install a Rust toolchain (rustup)" >&2; exit 1; }
		echo "setup: building (release)" >&2
		cargo build --release --locked -p lkl-hijack-preload -p lkl-capi -p lkl-tools --bins --lib >&2
	fi
	local missing=()
	for f in liblkl_hijack.so liblkl_capi.so liblkl_capi.a lkl-capi-include "${tools[@]}"; do
		[ -e "$rel/$f" ] || missing+=("$rel/$f")
	done
	if [ ${#missing[@]} -gt 0 ]; then
		echo "setup: not built: ${missing[*]} (run without --no-build)" >&2
		exit 1
	fi
	mkdir -p "$dest/bin" "$dest/lib/pkgconfig" "$dest/include" "$dest/share/man/man1"
	install -m 0755 bin/lkl-hijack.sh "$dest/bin/lkl-hijack.sh"
	for t in "${tools[@]}"; do
		install -m 0755 "$rel/$t" "$dest/bin/$t"
	done
	# The preload library under LKL's name, cargo's name a link to it.
	install -m 0755 "$rel/liblkl_hijack.so" "$dest/lib/liblkl-hijack.so"
	ln -sfn liblkl-hijack.so "$dest/lib/liblkl_hijack.so"
	# The C API: cargo's lkl_capi under LKL's names (its soname is liblkl.so).
	install -m 0755 "$rel/liblkl_capi.so" "$dest/lib/liblkl.so"
	install -m 0644 "$rel/liblkl_capi.a" "$dest/lib/liblkl.a"
	install -m 0644 capi/include/lkl.h capi/include/lkl_host.h "$dest/include/"
	rm -rf "$dest/include/lkl"
	cp -R "$rel/lkl-capi-include/lkl" "$dest/include/lkl"
	chmod -R u=rwX,go=rX "$dest/include/lkl"
	# liblkl.a carries the Rust runtime and the kernel: what it needs of
	# the C library goes in Libs.private (pkg-config --static).
	cat > "$dest/lib/pkgconfig/lkl.pc" <<PC
prefix=$dest
libdir=\${prefix}/lib
includedir=\${prefix}/include

Name: lkl
Description: Linux as a library (lkl-hijack's LKL-compatible C API)
Version: $(cat "$rel/lkl-capi-include/VERSION" 2>/dev/null || echo 6.12)
Cflags: -I\${includedir}
Libs: -L\${libdir} -Wl,-rpath,\${libdir} -llkl
Libs.private: -lpthread -ldl -lm -lrt -lgcc_s -lc
PC
	for t in "${tools[@]}"; do
		man_page "$t" "$dest"
	done
	echo "setup: installed into $dest (PKG_CONFIG_PATH=$dest/lib/pkgconfig pkg-config --cflags --libs lkl)" >&2
}

case "${1:-}" in
-h | --help) usage; exit 0 ;;
--prefix | --prefix=*)
	if [ "$1" = --prefix ]; then
		[ $# -ge 2 ] || { echo "setup: --prefix needs a DIR" >&2; exit 2; }
		dir=$2; shift 2
	else
		dir=${1#--prefix=}; shift
	fi
	build=1
	for a in "$@"; do
		case $a in
		--no-build) build=0 ;;
		*) echo "setup: unknown argument $a (see --help)" >&2; exit 2 ;;
		esac
	done
	install_prefix "$dir" "$build"
	exit 0 ;;
"" | --no-run) ;;
*) echo "setup: unknown argument $1 (see --help)" >&2; exit 2 ;;
esac

# Debian packages the build and the tests need.
packages=(linux-source-6.12 flex bison bc libelf-dev ccache binutils make gcc xz-utils
	  python3 iproute2 iputils-ping vde2 e2fsprogs procps util-linux libslirp0
	  dosfstools xfsprogs btrfs-progs fuse3 fuse2fs tcpdump iperf3 netcat-openbsd socat curl nodejs
	  pkg-config golang-go busybox-static musl-tools nginx-light wrk
	  libiperf-dev libsctp-dev libssl-dev valgrind)
missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	echo "setup: installing ${missing[*]}" >&2
	if [ "$(id -u)" -ne 0 ]; then
		sudo=sudo
	else
		sudo=
	fi
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
command -v cargo >/dev/null || { echo "setup: cargo not found: install a Rust toolchain (rustup)" >&2; exit 1; }
# The fuzzer driver (bin/fuzz.sh); a tool, not linked into anything we ship.
if ! cargo fuzz --version >/dev/null 2>&1; then
	echo "setup: installing cargo-fuzz" >&2
	cargo install --quiet --locked cargo-fuzz >&2 || echo "setup: cargo-fuzz did not install: bin/fuzz.sh will say so" >&2
fi

# The first kernel build takes minutes: run it here, where its progress
# shows; build.rs then finds the result in the cache.
config=${LKL_CONFIG:-defconfig}
echo "setup: building the kernel library (config $config)" >&2
kernel/build.sh --config "$config" >&2
cargo build --release --locked --workspace --bins --lib
# LKL's scripts preload liblkl-hijack.so: that name, next to cargo's.
ln -sfn liblkl_hijack.so "${CARGO_TARGET_DIR:-target}/release/liblkl-hijack.so"

if [ "${1:-}" != "--no-run" ]; then
	echo "setup: booting Linux inside a process" >&2
	cargo run --release --locked --quiet -p lkl-tools --bin lkl-boot
	echo "setup: ping, with its sockets in the kernel the launcher started for it (its loopback)" >&2
	bin/lkl-hijack.sh ping -c 3 -i 0.2 127.0.0.1
fi
