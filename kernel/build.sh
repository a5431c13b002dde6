#!/usr/bin/env bash
# Build the kernel library object lkl.o from Debian's linux-source-6.12 and
# our arch port (kernel/arch/lkl).
#
#   kernel/build.sh [--config NAME] [--out DIR]
#
# NAME is a file under arch/lkl/configs (default: defconfig). The Linux tree
# is extracted once from /usr/src/linux-source-6.12.tar.xz into the cache,
# or taken from $LKL_LINUX_SRC. The build is incremental (Kbuild) and uses
# ccache when present. Prints the kernel version; leaves DIR/lkl.o,
# DIR/unistd_64.h and DIR/kernel.version.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
config=defconfig
out=
while [ $# -gt 0 ]; do
	case "$1" in
	--config) config=$2; shift 2 ;;
	--out) out=$2; shift 2 ;;
	-h|--help) sed -n '2,11p' "$0"; exit 0 ;;
	*) echo "build.sh: unknown argument $1" >&2; exit 2 ;;
	esac
done

cache=${LKL_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/lkl-hijack}
tarball=${LKL_LINUX_TARBALL:-/usr/src/linux-source-6.12.tar.xz}
jobs=${LKL_JOBS:-$(nproc)}

# One build at a time per cache: two cargo builds (separate target dirs) must
# not run Kbuild in the same tree at once.
mkdir -p "$cache"
exec 9>"$cache/.lock"
if command -v flock >/dev/null 2>&1; then flock 9; fi

need() {
	command -v "$1" >/dev/null 2>&1 ||
		{ echo "lkl kernel build: '$1' not found: apt-get install $2" >&2; exit 1; }
}
need make make
need gcc gcc
need flex flex
need bison bison
need bc bc
need xz xz-utils
[ -e /usr/include/libelf.h ] || [ -e /usr/include/gelf.h ] ||
	{ echo "lkl kernel build: libelf headers not found: apt-get install libelf-dev" >&2; exit 1; }

if [ -n "${LKL_LINUX_SRC:-}" ]; then
	src=$LKL_LINUX_SRC
else
	[ -f "$tarball" ] ||
		{ echo "lkl kernel build: $tarball not found: apt-get install linux-source-6.12" >&2; exit 1; }
	# One extracted tree per tarball content, so a Debian update extracts anew.
	stamp=$(stat -c '%s-%Y' "$tarball")
	src=$cache/src/linux-$stamp
	if [ ! -f "$src/.extracted" ]; then
		echo "lkl kernel build: extracting $tarball" >&2
		rm -rf "$src" "$src.tmp"
		mkdir -p "$src.tmp"
		tar -xf "$tarball" -C "$src.tmp" --strip-components=1
		mv "$src.tmp" "$src"
		touch "$src/.extracted"
	fi
fi

# Overlay arch/lkl, rewriting only files whose content changed so that
# Kbuild's timestamps stay meaningful.
sync_tree() {
	local from=$1 to=$2 f rel
	mkdir -p "$to"
	(cd "$from" && find . -type d) | while read -r rel; do mkdir -p "$to/$rel"; done
	(cd "$from" && find . -type f) | while read -r rel; do
		if ! cmp -s "$from/$rel" "$to/$rel"; then cp "$from/$rel" "$to/$rel"; fi
	done
	(cd "$to" && find . -type f) | while read -r rel; do
		[ -e "$from/$rel" ] || rm -f "$to/$rel"
	done
}
sync_tree "$here/arch/lkl" "$src/arch/lkl"

build=$cache/build/$config
mkdir -p "$build"
# A header added to (or removed from) the arch can shadow another one that
# Kbuild's dependency files do not know about: start that build afresh
# (ccache makes it cheap).
files=$(cd "$here/arch/lkl" && find . -type f | LC_ALL=C sort | sha256sum | cut -c1-16)
if [ "$(cat "$build/.lkl-files" 2>/dev/null)" != "$files" ]; then
	rm -rf "$build"
	mkdir -p "$build"
	echo "$files" > "$build/.lkl-files"
	# ccache's direct mode cannot see a new header shadowing an old one.
	export CCACHE_RECACHE=1
fi
cc=gcc
if command -v ccache >/dev/null 2>&1; then
	cc="ccache gcc"
	export CCACHE_DIR=${CCACHE_DIR:-$cache/ccache}
	export CCACHE_SLOPPINESS=${CCACHE_SLOPPINESS:-time_macros,include_file_mtime,include_file_ctime}
fi
kmake() {
	make -C "$src" O="$build" ARCH=lkl CC="$cc" HOSTCC=gcc -j"$jobs" "$@"
}

cfgsrc=$here/arch/lkl/configs/$config
[ -f "$cfgsrc" ] || { echo "lkl kernel build: no config $cfgsrc" >&2; exit 1; }
if ! cmp -s "$cfgsrc" "$build/.lkl-defconfig"; then
	kmake "$config" >/dev/null
	cp "$cfgsrc" "$build/.lkl-defconfig"
	# Every option the defconfig names must have survived Kconfig.
	missing=$(grep -E '^CONFIG_[A-Z0-9_]+=' "$cfgsrc" | while IFS= read -r line; do
		grep -qxF "$line" "$build/.config" || echo "$line"
	done)
	if [ -n "$missing" ]; then
		echo "lkl kernel build: options not set by Kconfig (dependencies?):" >&2
		echo "$missing" >&2
		rm -f "$build/.lkl-defconfig"
		exit 1
	fi
fi

version=$(kmake -s kernelversion 2>/dev/null | tail -n 1)
echo "lkl kernel build: Linux $version (ARCH=lkl, config $config, $jobs jobs, CC=$cc)" >&2
kmake lkl
kmake headers >/dev/null

if [ -n "$out" ]; then
	mkdir -p "$out"
	cp "$build/lkl.o" "$out/lkl.o.tmp" && mv "$out/lkl.o.tmp" "$out/lkl.o"
	cp "$build/usr/include/asm/unistd_64.h" "$out/unistd_64.h"
	echo "$version" > "$out/kernel.version"
fi
echo "$build/lkl.o"
