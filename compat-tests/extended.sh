#!/usr/bin/env bash
# The long matrices that CI leaves out to stay well inside its time budget: everything
# ./test.sh runs covers each client family and feature once; this adds the older client
# lines and the long runs. Run it after ./test.sh (it reuses its build and caches).
#
#   compat-tests/extended.sh            all of it (about an hour on 2 cores)
#   compat-tests/extended.sh java       one part: java, reliability, fuzz, librdkafka
set -uo pipefail
cd "$(dirname "$0")/.."
export KLAMM_CACHE="${KLAMM_CACHE:-$HOME/.cache/klamm}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
export KLAMM_BIN="${KLAMM_BIN:-$CARGO_TARGET_DIR/release/klamm}"
[ -x "$KLAMM_BIN" ] || cargo build --release --locked || exit 1

part="${1:-all}"
failed=()
run() { # name command...
  local name=$1; shift
  [ "$part" = all ] || [ "$part" = "$name" ] || return 0
  printf '\n=== extended: %s\n' "$name"
  "$@" </dev/null || failed+=("$name")
}

# The kafka-clients 3.9 line (the last with ZooKeeper-era defaults) as well as 4.4.
run java env KAFKA_VERSIONS="4.4.0 3.9.1" bash compat-tests/java/run.sh
# The reliability battery's long form, whose figures RELIABILITY.md records.
run reliability bash compat-tests/reliability/run.sh --long
# Ten minutes per cargo fuzz target instead of thirty seconds.
run fuzz bash fuzz/run.sh 600
# Every librdkafka broker test, skip-listed ones included, in its full mode.
run librdkafka bash compat-tests/librdkafka/run.sh --full

for f in "${failed[@]}"; do echo "FAILED: $f"; done
[ ${#failed[@]} -eq 0 ]
