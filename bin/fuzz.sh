#!/usr/bin/env bash
# Coverage-guided fuzzing of the parts that take hostile input (fuzz/):
#   config     the JSON config parser (and its round trip)
#   virtqueue  the split virtqueue against a driver that writes all of memory
#   mmio       the virtio-mmio register file + virtio-net with its worker
#
#   bin/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]     (default 20 s, all)
#
# Prints executions and crashes per target and a closing line
# "fuzz: N passed, N failed[, N skipped]"; exits 1 if any target crashed
# (the input is left in fuzz/artifacts/TARGET/). Needs cargo-fuzz
# (`cargo install cargo-fuzz`, which bin/setup.sh runs): without it every
# target is reported skipped, and under CI (CI=true) that fails (exit 1).
# The toolchain here is stable, so the build runs with RUSTC_BOOTSTRAP=1
# for the sanitizer flags cargo fuzz passes.
# The fuzz crate is a tool, not part of what we ship: its libFuzzer runtime
# is never linked into the library or the programs.
set -uo pipefail
cd "$(dirname "$0")/../fuzz"
secs=${1:-20}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(config virtqueue mmio channel)

if ! cargo fuzz --version >/dev/null 2>&1; then
	case ${CI:-} in
	"" | 0 | false)
		echo "fuzz: cargo-fuzz is not installed (cargo install cargo-fuzz, or bin/setup.sh): every target skipped" >&2
		echo "fuzz: 0 passed, 0 failed, ${#targets[@]} skipped"
		exit 0
		;;
	*)
		echo "fuzz: cargo-fuzz is not installed (cargo install cargo-fuzz, or bin/setup.sh): under CI that fails" >&2
		echo "fuzz: 0 passed, ${#targets[@]} failed"
		exit 1
		;;
	esac
fi
export RUSTC_BOOTSTRAP=1
cargo fuzz build -O >/dev/null 2>build.log || { cat build.log >&2; exit 1; }
failed=0
passed=0
for t in "${targets[@]}"; do
	mkdir -p "corpus/$t"
	extra=()
	[ -d "seeds/$t" ] && extra+=("seeds/$t")
	opts=()
	[ -f "$t.dict" ] && opts+=("-dict=$t.dict")
	log=$(cargo fuzz run -O "$t" "corpus/$t" "${extra[@]}" -- "${opts[@]}" \
		-max_total_time="$secs" -print_final_stats=1 2>&1)
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' <<<"$log")
	if grep -q "^SUMMARY\|panicked" <<<"$log"; then
		failed=$((failed + 1))
		echo "fuzz $t: CRASH after ${runs:-?} runs:" >&2
		grep -E "panicked|SUMMARY|Test unit written" <<<"$log" >&2
	else
		echo "fuzz $t: ${runs:-?} runs in ${secs} s, 0 crashes"
		passed=$((passed + 1))
	fi
done
echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
