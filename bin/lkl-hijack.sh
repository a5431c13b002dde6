#!/usr/bin/env bash
# Runs a program with its socket calls served by Linux running inside it:
#
#   bin/lkl-hijack.sh [--config FILE] [--single-process] PROGRAM [ARGS...]
#   bin/lkl-hijack.sh --attach PID PROGRAM [ARGS...]
#   bin/lkl-hijack.sh [--config FILE] --check-config
#   bin/lkl-hijack.sh --help
#
# One kernel serves PROGRAM and every process it starts (the process-tree
# mode): it boots in a kernel server before PROGRAM runs, from the JSON
# config FILE (--config, or LKL_HIJACK_CONFIG_FILE), else ./lkl-hijack.json,
# else the LKL_HIJACK_* variables (LKL's keys; see README), and halts after
# the tree's last process. PROGRAM keeps this script's pid. --single-process
# (or the config's "mode": "single-process", LKL_HIJACK_MODE) boots the
# kernel inside PROGRAM instead (LKL's way: a forked child gets none).
# --attach runs PROGRAM on the kernel of the tree process PID belongs to
# (same user only). A bad config stops with every error on stderr.
# --check-config checks the config the same way and prints the effective
# settings (offloads too)
# without running anything: status 0, or 1 with the errors.
# LKL_HIJACK_DEBUG=1 shows the settings and the kernel's console.
# LKL_HIJACK_LIB overrides the library's path. Setuid programs (ping)
# ignore LD_PRELOAD: run a non-setuid copy. LKL_HIJACK_SYSCALLS=all (or the
# config's "syscalls": "all") routes every system call, raw ones too, to
# the kernel (Linux >= 5.11 host); Go programs get it by default. Static
# programs (static Go too) run through lkl-loader, with it.
set -euo pipefail
usage() { sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; }
need_file() {
	if [ ! -r "$1" ] || [ -d "$1" ]; then
		echo "lkl-hijack.sh: --config $1: not a readable file" >&2
		exit 2
	fi
}
check=
single=
attach=
while [ $# -gt 0 ]; do
	case $1 in
	-h | --help) usage; exit 0 ;;
	--single-process) single=1; shift ;;
	--tree) single=0; shift ;;
	--attach)
		if [ $# -lt 2 ]; then echo "lkl-hijack.sh: --attach needs a PID" >&2; exit 2; fi
		attach=$2; shift 2 ;;
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
# One config for the whole tree: a relative path (and ./lkl-hijack.json)
# is made absolute, so that a process of the tree running in another
# directory (a version manager's shim, `make -C`) reads the same file.
case ${LKL_HIJACK_CONFIG_FILE-} in
"")
	if [ -z "${LKL_HIJACK_CONFIG_FILE+set}" ] && [ -f lkl-hijack.json ]; then
		export LKL_HIJACK_CONFIG_FILE=$PWD/lkl-hijack.json
	fi ;;
/*) ;;
*) export LKL_HIJACK_CONFIG_FILE=$PWD/$LKL_HIJACK_CONFIG_FILE ;;
esac
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
if [ -n "$check" ]; then
	export LD_PRELOAD="$lib${LD_PRELOAD:+:$LD_PRELOAD}"
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
# A kernel server already serving this process (a hijacked program ran
# this script): a new tree gets a kernel of its own.
unset LKL_HIJACK_SERVER
if [ -n "$attach" ]; then
	server=$(tr '\0' '\n' 2>/dev/null <"/proc/$attach/environ" | sed -n 's/^LKL_HIJACK_SERVER=//p' | head -n 1) || true
	if [ -z "$server" ] || [ ! -S "$server" ]; then
		# A program that sets its process title (nginx) writes over the
		# memory /proc/PID/environ shows: find the server by the process's
		# sockets instead, one of which is connected to the server's
		# kernel.sock or interrupt.sock (`ss` shows the peers).
		inodes=" $(for f in /proc/"$attach"/fd/*; do readlink "$f" 2>/dev/null; done |
			sed -n 's/^socket:\[\([0-9]*\)\]$/\1/p' | tr '\n' ' ')" || true
		server=$(ss -xn 2>/dev/null | awk -v want="$inodes" '
			$5 ~ /\/lkl-hijack\.[^\/]*\/(kernel\.sock(\.new)?|interrupt\.sock)$/ && index(want, " " $8 " ") {
				sub(/\/[^\/]*$/, "/kernel.sock", $5); print $5; exit }') || true
	fi
	if [ -z "$server" ] || [ ! -S "$server" ]; then
		echo "lkl-hijack.sh: --attach $attach: not a process of a running tree (of this user)" >&2
		exit 1
	fi
	export LKL_HIJACK_SERVER=$server
fi
# The config may ask for the single-process mode ("mode"; the switches win).
if [ -z "$single" ] && [ -z "$attach" ]; then
	case ${LKL_HIJACK_MODE:-} in
	single-process) single=1 ;;
	"") cfg=${LKL_HIJACK_CONFIG_FILE:-lkl-hijack.json}
		if [ -f "$cfg" ] && grep -q '"mode"' "$cfg" 2>/dev/null; then
			# The library reads it (and says what is wrong with it, later).
			if LD_PRELOAD="$lib" LKL_HIJACK_CHECK_CONFIG=1 /bin/sh -c 'exit 3' 2>/dev/null | grep -q '^mode: single-process'; then
				single=1
			fi
		fi ;;
	esac
fi
[ "$single" = 0 ] && single=
if [ -n "$attach" ]; then
	:
elif [ -z "$single" ]; then
	server_bin=$(dirname "$lib")/lkl-server
	[ -x "$server_bin" ] || server_bin=$here/target/release/lkl-server
	if [ ! -x "$server_bin" ]; then
		echo "lkl-hijack.sh: lkl-server not found next to $lib: run bin/setup.sh (or use --single-process)" >&2
		exit 1
	fi
	# A private directory (mktemp makes it 0700) for the server's sockets.
	dir=$(mktemp -d "${XDG_RUNTIME_DIR:-${TMPDIR:-/tmp}}/lkl-hijack.XXXXXX")
	# The server runs in a session of its own (Ctrl-C in a terminal reaches
	# the program, not the kernel), with no stdout (stdin only until it has
	# booted: debug 0x200 waits for Enter there), and is not the program's
	# child (a subshell starts it and exits). It watches this shell's pid,
	# which the program inherits with exec.
	# (The system-call tier is the program's, never the server's.)
	(LD_PRELOAD="$lib${LD_PRELOAD:+:$LD_PRELOAD}" LKL_HIJACK_SYSCALLS=libc setsid "$server_bin" --dir "$dir" --watch $$ <&0 >/dev/null &
		echo $! >"$dir/server.pid")
	spid=$(cat "$dir/server.pid")
	rm -f "$dir/server.pid"
	# The channel's socket appears when the kernel is up and configured.
	while [ ! -S "$dir/kernel.sock" ]; do
		if ! kill -0 "$spid" 2>/dev/null; then
			# It said why on stderr (every config error, one per line).
			rm -rf "$dir"
			exit 1
		fi
		sleep 0.002
	done
	export LKL_HIJACK_SERVER=$dir/kernel.sock
fi
export LD_PRELOAD="$lib${LD_PRELOAD:+:$LD_PRELOAD}"
if [ -n "${static_prog:-}" ]; then
	# Every system call of a static program is routed (the loader's way).
	export LKL_HIJACK_SYSCALLS=all
	exec "$loader" "$static_prog" "$@"
fi
exec "$@"
