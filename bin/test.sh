#!/usr/bin/env bash
# Runs every test: formatting, lints, the licence check, the unit and
# integration tests (each kernel boot in a process of its own), then the
# benchmarks in their quick form (figures only, nothing asserted).
set -euo pipefail
cd "$(dirname "$0")/.."

bin/setup.sh --no-run
echo "== cargo fmt --check"
cargo fmt --all -- --check
cargo fmt --manifest-path fuzz/Cargo.toml -- --check
echo "== cargo clippy -- -D warnings"
cargo clippy --release --locked --workspace --all-targets -- -D warnings
echo "== licences"
python3 bin/check-licenses.py
echo "== tests"
cargo test --release --locked --workspace --all-targets
echo "== fuzzing (short: 20 s per target; long runs: bin/fuzz.sh 3600)"
bin/fuzz.sh 20
echo "== benchmarks (quick)"
cargo run --release --locked --quiet -p lkl-bench --bin lkl-bench -- --quick
cargo run --release --locked --quiet -p lkl-bench --bin net-bench -- --quick || echo "net-bench: FAILED (figures above; benchmarks report, they do not gate)"
cargo run --release --locked --quiet -p lkl-bench --bin disk-bench -- --mb 100 --rounds 2 || echo "disk-bench: FAILED (benchmarks report, they do not gate)"
cargo run --release --locked --quiet -p lkl-bench --bin fuse-bench -- --runs 3 || echo "fuse-bench: FAILED (benchmarks report, they do not gate)"
bin/hijack-bench.sh 2 2 || echo "hijack-bench: FAILED (benchmarks report, they do not gate)"
# The system-call tier next to the LD_PRELOAD hooks and the host, back to back.
tb=${CARGO_TARGET_DIR:-target}/release/tier-bench
{ echo "tier-bench, host:"; "$tb" && echo "tier-bench, LD_PRELOAD hooks (single-process):" &&
	bin/lkl-hijack.sh --single-process "$tb" && echo "tier-bench, the tier (single-process):" &&
	LKL_HIJACK_SYSCALLS=all bin/lkl-hijack.sh --single-process "$tb"; } || echo "tier-bench: FAILED (benchmarks report, they do not gate)"
