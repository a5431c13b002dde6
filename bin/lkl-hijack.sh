#!/usr/bin/env bash
# Runs a program with its socket calls served by Linux running inside it:
#
#   bin/lkl-hijack.sh PROGRAM [ARGS...]
#
# The kernel boots in the program's process before main, from the JSON
# config named by LKL_HIJACK_CONFIG_FILE, else ./lkl-hijack.json, else the
# LKL_HIJACK_* variables (LKL's keys; see README). A bad config stops the
# program with the error on stderr. LKL_HIJACK_DEBUG=1 shows the kernel's
# console. LKL_HIJACK_LIB overrides the library's path.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
lib=${LKL_HIJACK_LIB:-}
if [ -z "$lib" ]; then
	for candidate in "$here/target/release/liblkl_hijack.so" "$here/target/debug/liblkl_hijack.so"; do
		if [ -f "$candidate" ]; then lib=$candidate; break; fi
	done
fi
if [ -z "$lib" ] || [ ! -f "$lib" ]; then
	echo "lkl-hijack.sh: liblkl_hijack.so not found: run bin/setup.sh (or cargo build --release -p lkl-hijack-preload)" >&2
	exit 1
fi
if [ $# -eq 0 ]; then
	sed -n '2,10p' "$0" >&2
	exit 2
fi
# LKL_HIJACK_LIB is the launcher's own: the library rejects unknown LKL_HIJACK_* names.
unset LKL_HIJACK_LIB
export LD_PRELOAD="$lib${LD_PRELOAD:+:$LD_PRELOAD}"
exec "$@"
