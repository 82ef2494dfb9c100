#!/usr/bin/env bash
# Builds the release broker and runs the benchmark; prints numbers (see BENCHMARKS.md).
set -euo pipefail
cd "$(dirname "$0")/../.."
export KLAMM_CACHE="${KLAMM_CACHE:-$HOME/.cache/klamm}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$KLAMM_CACHE/target}"
cargo build --release --locked 2>&1 | tail -n 1
command -v kcat >/dev/null || { apt-get update -qq && apt-get install -y -qq kcat; }
py=python3
[ -x "$KLAMM_CACHE/venv-python/bin/python" ] && py="$KLAMM_CACHE/venv-python/bin/python"
exec "$py" compat-tests/bench/bench.py "$CARGO_TARGET_DIR/release/klamm" "$@"
