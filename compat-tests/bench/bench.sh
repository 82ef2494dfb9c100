#!/usr/bin/env bash
# Builds the release broker and the librdkafka consumer, then runs the benchmark; prints
# numbers (see BENCHMARKS.md). With --reference, bench.py runs the same workloads against a
# Kafka 4.4 broker (compat-tests/kafka/kafka.sh) as well and prints the ratios (REFERENCE.md).
set -euo pipefail
cd "$(dirname "$0")/../.."
export KLAMM_CACHE="${KLAMM_CACHE:-$HOME/.cache/klamm}"
# The same build as test.sh: ./target on a developer's machine, the cache in CI.
if [ -z "${CARGO_TARGET_DIR:-}" ]; then
  if [ "${CI:-}" = true ]; then export CARGO_TARGET_DIR="$KLAMM_CACHE/target"; else export CARGO_TARGET_DIR="$PWD/target"; fi
fi
cargo build --release --locked 2>&1 | tail -n 1
missing=()
command -v kcat >/dev/null || missing+=(kcat)
[ -f /usr/include/librdkafka/rdkafka.h ] || missing+=(librdkafka-dev)
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
rdk="$KLAMM_CACHE/rdkafka_consume"
gcc -O2 -Wall -o "$rdk" compat-tests/bench/rdkafka_consume.c -lrdkafka
py=python3
[ -x "$KLAMM_CACHE/venv-python/bin/python" ] && py="$KLAMM_CACHE/venv-python/bin/python"
exec "$py" compat-tests/bench/bench.py "$CARGO_TARGET_DIR/release/klamm" --rdkafka-consume "$rdk" "$@"
