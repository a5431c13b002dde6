#!/usr/bin/env bash
# Runs a program with its socket calls served by Linux running inside it:
#
#   bin/lkl-hijack.sh [--config FILE] PROGRAM [ARGS...]
#   bin/lkl-hijack.sh [--config FILE] --check-config
#   bin/lkl-hijack.sh --help
#
# The kernel boots in the program's process before main, from the JSON
# config FILE (--config, or LKL_HIJACK_CONFIG_FILE), else ./lkl-hijack.json,
# else the LKL_HIJACK_* variables (LKL's keys; see README). A bad config
# stops the program with every error on stderr. --check-config checks the
# config the same way and prints the effective settings (offloads too)
# without running anything: status 0, or 1 with the errors.
# LKL_HIJACK_DEBUG=1 shows the settings and the kernel's console.
# LKL_HIJACK_LIB overrides the library's path. Setuid programs (ping)
# ignore LD_PRELOAD: run a non-setuid copy. LKL_HIJACK_SYSCALLS=all (or the
# config's "syscalls": "all") routes every system call, raw ones too, to
# the kernel (Linux >= 5.11 host); Go programs get it by default. Static
# programs (static Go too) run through lkl-loader, with it.
set -euo pipefail
usage() { sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; }
need_file() {
	if [ ! -r "$1" ] || [ -d "$1" ]; then
		echo "lkl-hijack.sh: --config $1: not a readable file" >&2
		exit 2
	fi
}
check=
while [ $# -gt 0 ]; do
	case $1 in
	-h | --help) usage; exit 0 ;;
	--check-config) check=1; shift ;;
	--config)
		if [ $# -lt 2 ]; then echo "lkl-hijack.sh: --config needs a FILE" >&2; exit 2; fi
		need_file "$2"; export LKL_HIJACK_CONFIG_FILE=$2; shift 2 ;;
	--config=*)
		need_file "${1#--config=}"; export LKL_HIJACK_CONFIG_FILE=${1#--config=}; shift ;;
	--) shift; break ;;
	*) break ;;
	esac
done
if [ -n "$check" ] && [ $# -gt 0 ]; then
	echo "lkl-hijack.sh: --check-config runs no program (given: $1)" >&2
	exit 2
fi
if [ -z "$check" ] && [ $# -eq 0 ]; then
	usage >&2
	exit 2
fi
here=$(cd "$(dirname "$0")/.." && pwd)
lib=${LKL_HIJACK_LIB:-}
if [ -z "$lib" ]; then
	# LKL's name (liblkl-hijack.so, a link bin/setup.sh makes) or cargo's.
	for dir in "$here/target/release" "$here/target/debug" "$(dirname "$0")" "$here/lib"; do
		for name in liblkl-hijack.so liblkl_hijack.so; do
			if [ -f "$dir/$name" ]; then lib=$dir/$name; break 2; fi
		done
	done
fi
if [ -z "$lib" ] || [ ! -f "$lib" ]; then
	echo "lkl-hijack.sh: liblkl-hijack.so (or liblkl_hijack.so) not found: run bin/setup.sh (or cargo build --release -p lkl-hijack-preload)" >&2
	exit 1
fi
# What the program is: a Go binary (its runtime makes its own system calls)
# turns the system-call tier on (docs/every-syscall.md); a static ELF
# (no PT_INTERP: no dynamic loader, so no preloaded library) runs through
# lkl-loader (loader/), which the library is preloaded into: it maps the
# program and jumps to it with the kernel and the tier set up.
elf_u() { # FILE OFFSET BYTES: an unsigned little-endian field of FILE
	od -An -t "u$3" -j "$2" -N "$3" "$1" 2>/dev/null | tr -d ' '
}
elf_is_static() { # FILE: an x86_64 ELF with no PT_INTERP
	local f=$1 phoff phentsize phnum i
	[ "$(head -c 4 "$f" 2>/dev/null | od -An -c | tr -d ' ')" = '177ELF' ] || return 1
	phoff=$(elf_u "$f" 32 8); phentsize=$(elf_u "$f" 54 2); phnum=$(elf_u "$f" 56 2)
	[ -n "$phoff" ] && [ -n "$phnum" ] || return 1
	for ((i = 0; i < phnum; i++)); do
		[ "$(elf_u "$f" $((phoff + i * phentsize)) 4)" = 3 ] && return 1
	done
	return 0
}
is_go() { # FILE: Go's build-info header, in every Go binary since Go 1.13
	LC_ALL=C grep -qa 'Go buildinf:' "$1" 2>/dev/null
}
if [ -z "$check" ]; then
	prog=$(command -v -- "$1" 2>/dev/null || true)
	if [ -n "$prog" ] && [ -f "$prog" ]; then
		if elf_is_static "$prog"; then
			loader=
			for c in "$(dirname "$lib")/lkl-loader" "$here/target/release/lkl-loader" "$here/target/debug/lkl-loader"; do
				if [ -x "$c" ]; then loader=$c; break; fi
			done
			if [ -z "$loader" ]; then
				echo "lkl-hijack.sh: $1 is a statically linked program: it loads no preload library, so it runs through lkl-loader, which is not built (cargo build --release -p lkl-loader)." >&2
				exit 2
			fi
			static_prog=$prog
		fi
		if is_go "$prog" && [ -z "${LKL_HIJACK_SYSCALLS:-}" ]; then
			# Go's runtime issues its system calls itself: every one is routed.
			export LKL_HIJACK_SYSCALLS=all
		fi
	fi
fi
# LKL_HIJACK_LIB is the launcher's own: the library rejects unknown LKL_HIJACK_* names.
unset LKL_HIJACK_LIB
export LD_PRELOAD="$lib${LD_PRELOAD:+:$LD_PRELOAD}"
if [ -n "${static_prog:-}" ]; then
	# Every system call of a static program is routed (the loader's way).
	export LKL_HIJACK_SYSCALLS=all
	exec "$loader" "$static_prog" "$@"
fi
if [ -n "$check" ]; then
	# The library checks the config and exits before the program's main
	# (0: good, 1: errors); a shell that gets to run says the library
	# did not (exit 3).
	status=0
	LKL_HIJACK_CHECK_CONFIG=1 /bin/sh -c 'exit 3' || status=$?
	if [ "$status" -eq 3 ]; then
		echo "lkl-hijack.sh: --check-config: $lib did not run (not loaded?)" >&2
	fi
	exit "$status"
fi
exec "$@"
