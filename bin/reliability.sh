#!/usr/bin/env bash
# The long reliability runs (issue 6), from one command, with their figures:
#
#   bin/reliability.sh            everything below (about 1 h 20 min)
#   bin/reliability.sh NAME...    only these parts: durability sanitize
#                                 fuzz soak
#
#   durability  100 SIGKILL trials of fsync'd writes on an ext4 disk
#               (tests/durability.rs, ignored test; LKL_DURABILITY_TRIALS=N)
#   sanitize    valgrind memcheck, helgrind, DRD and AddressSanitizer
#               (bin/sanitize.sh)
#   fuzz        an hour per fuzz target (bin/fuzz.sh 3600)
#   soak        10 minutes of mixed traffic through the hijack
#               (hijack-stress --soak 600 under bin/lkl-hijack.sh)
#
# The short versions of all of these run in `cargo test` (bin/test.sh).
# Prints a summary line per part; exits 1 if any part failed.
set -uo pipefail
cd "$(dirname "$0")/.."
parts=("$@")
[ ${#parts[@]} -gt 0 ] || parts=(durability sanitize fuzz soak)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$(pwd)/target}
cargo build --release --quiet --workspace --all-targets || exit 1
summary=()
failed=0
part() { # NAME CMD...
	local name=$1
	shift
	echo "== $name: $*"
	local t0=$SECONDS
	"$@"
	local rc=$?
	local s="$name: $([ $rc = 0 ] && echo ok || echo FAILED) in $((SECONDS - t0)) s"
	summary+=("$s")
	[ $rc = 0 ] || failed=1
}
for p in "${parts[@]}"; do
	case $p in
	durability)
		part durability cargo test --release --quiet --test durability -- --ignored --nocapture
		;;
	sanitize)
		part sanitize bin/sanitize.sh
		;;
	fuzz)
		part fuzz bin/fuzz.sh 3600
		;;
	soak)
		part soak bin/lkl-hijack.sh "$CARGO_TARGET_DIR/release/hijack-stress" --soak 600
		;;
	*)
		echo "reliability.sh: unknown part $p (durability sanitize fuzz soak)" >&2
		exit 2
		;;
	esac
done
echo "== summary"
printf '%s\n' "${summary[@]}"
exit $failed
