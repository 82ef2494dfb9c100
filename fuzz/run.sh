#!/usr/bin/env bash
# Runs the cargo fuzz targets (request_decoder, batch_parser, sasl_parsers) for a bounded time each.
#   fuzz/run.sh [SECONDS_PER_TARGET]     default 60; CI runs 60, BENCHMARKS/RELIABILITY runs 600
# Installs cargo-fuzz from crates.io if missing. Builds with the project's toolchain; the
# sanitizer is off: the parsers are safe Rust, and what is looked for is a panic,
# a timeout, or an allocation the input dictates (over 64 MB: fuzz/src/lib.rs aborts).
# Findings are written to fuzz/artifacts/<target>/ and make this script fail.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
secs="${1:-60}"
cd "$here"

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "installing cargo-fuzz" >&2
  cargo install cargo-fuzz --version 0.13.2 --locked --quiet
fi
# cargo fuzz passes -Z flags; RUSTC_BOOTSTRAP lets the project's own (stable) toolchain
# take them, so no nightly is needed.
export RUSTC_BOOTSTRAP=1

# Its own target dir: the flags differ from the broker build, which must not be rebuilt.
export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-${KLAMM_CACHE:-$HOME/.cache/klamm}/fuzz-target}"
corpus="${FUZZ_CORPUS_DIR:-$here/corpus}"
python3 "$here/seeds.py" "$corpus"
cargo fuzz build --release --sanitizer none 2>&1 | tail -n 3

status=0
for target in request_decoder batch_parser sasl_parsers; do
  mkdir -p "$here/artifacts/$target"
  echo "== fuzz $target for ${secs}s"
  # Any single allocation past 64 MB aborts (fuzz/src/lib.rs), which is how a length field
  # that a decoder trusts shows up; -rss_limit_mb bounds the total.
  log="$here/artifacts/$target/last-run.log"
  rc=0
  cargo fuzz run --release --sanitizer none "$target" "$corpus/$target" -- \
    -max_total_time="$secs" -rss_limit_mb=1024 -timeout=10 \
    -max_len=1048576 -print_final_stats=1 -artifact_prefix="$here/artifacts/$target/" \
    >"$log" 2>&1 || rc=$?
  grep -E "cov:" "$log" | tail -n 1 || true
  grep -E "^(stat::number_of_executed_units|stat::average_exec_per_sec|stat::peak_rss_mb|==[0-9]+== ERROR|SUMMARY|thread .* panicked|klamm-fuzz:|.*Test unit written)" "$log" || true
  if [ "$rc" -ne 0 ]; then
    tail -n 40 "$log" >&2
    echo "FAIL: fuzz $target (exit $rc); the input is in fuzz/artifacts/$target/" >&2
    status=1
  else
    echo "PASS: fuzz $target"
  fi
done
exit "$status"
