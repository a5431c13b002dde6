#!/usr/bin/env bash
# Installs what is missing (Debian packages, as root via apt-get), builds the
# kernel library with visible progress, then runs the main job: boots Linux
# inside a process (lkl-boot), and runs the real ping with its sockets in a
# Linux kernel inside the ping process (bin/lkl-hijack.sh).
#
#   bin/setup.sh [--no-run]
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the build and the tests need.
packages=(linux-source-6.12 flex bison bc libelf-dev ccache binutils make gcc xz-utils
	  python3 iproute2 iputils-ping vde2 e2fsprogs procps util-linux libslirp0
	  dosfstools xfsprogs btrfs-progs fuse3 fuse2fs tcpdump iperf3 netcat-openbsd socat curl nodejs golang-go busybox-static musl-tools)
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
	echo "setup: ping, with its sockets in the kernel inside it (its loopback)" >&2
	bin/lkl-hijack.sh ping -c 3 -i 0.2 127.0.0.1
fi
