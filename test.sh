#!/usr/bin/env bash
# Installs everything the tests need, builds the release broker once, and runs every test:
# Rust unit and integration tests, then each real-client suite in compat-tests/ against the
# same release binary. Works non-interactively (CI=true, no stdin) on a fresh Debian machine.
#
#   ./test.sh                 everything
#   ./test.sh rust            only cargo fmt/clippy/test and the cargo fuzz targets
#   ./test.sh compat [NAME]   only the client suites (optionally one: kcat, python, kafkajs,
#                             librdkafka, java, kafka-tools, go, reliability, kafka)
#
# The client suites run in two parallel lanes. Longer matrices (older kafka-clients lines,
# the long reliability run, longer fuzzing) are in compat-tests/extended.sh.
set -uo pipefail

cd "$(dirname "$0")"
ROOT=$PWD
export KLAMM_CACHE="${KLAMM_CACHE:-$HOME/.cache/klamm}"
# One release build. On a developer's machine it is ./target, the same one `cargo run
# --release` uses, so running both set-up commands compiles RocksDB once. CI works in a
# fresh clone each time, so there the build lives outside the clone and is reused.
if [ -z "${CARGO_TARGET_DIR:-}" ]; then
  if [ "${CI:-}" = true ]; then
    export CARGO_TARGET_DIR="$KLAMM_CACHE/target"
  else
    export CARGO_TARGET_DIR="$ROOT/target"
  fi
fi
export KLAMM_BIN="$CARGO_TARGET_DIR/release/klamm"
mkdir -p "$KLAMM_CACHE"

what="${1:-all}"
only="${2:-}"

t0=$SECONDS
log() { printf '\n=== %s  [+%d s]\n' "$*" $((SECONDS - t0)); }

apt_install() {
  local missing=()
  for pkg in "$@"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "apt-get install ${missing[*]}"
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
}

passed=0
failed=0
failures=()
record() { # name exit-code
  if [ "$2" -eq 0 ]; then passed=$((passed + 1)); else failed=$((failed + 1)); failures+=("$1"); fi
}

# bindgen (rocksdb) needs libclang; kcat is the CLI client the compat suites use; objdump
# (binutils) checks the binary's glibc needs against the Docker image; the cluster tests
# (tests/it/cluster.rs) run Debian's ZooKeeper.
apt_install libclang-dev clang kcat binutils zookeeper

# CI runs one kafka-clients line (the newest); compat-tests/extended.sh runs the older ones.
export KAFKA_VERSIONS="${KAFKA_VERSIONS:-4.4.0}"

# The Java suites (kafka-clients, Kafka Streams, Kafka's tools) and the reference Kafka
# broker (compat-tests/kafka: ApiVersions against Kafka 4.4) need a JDK 17+ and Maven; the Go
# suite needs Go. Machines that have them keep theirs.
need_compat() { [ "$what" = all ] || { [ "$what" = compat ] && { [ -z "$only" ] || [ "$only" = "$1" ]; }; }; }
if need_compat java || need_compat kafka-tools || need_compat kafka; then
  command -v java >/dev/null && command -v mvn >/dev/null || apt_install openjdk-17-jdk-headless maven
fi
if need_compat go && ! command -v go >/dev/null; then
  # Debian's Go is older than the clients need; the go command fetches the toolchain that
  # go.mod names from the module proxy.
  apt_install golang-go
  export GOTOOLCHAIN=auto
fi

log "cargo build --release"
cargo build --release --locked 2>&1 | tail -n 3
[ -x "$KLAMM_BIN" ] || { echo "build failed: no $KLAMM_BIN"; exit 1; }

if [ "$what" = all ] || [ "$what" = rust ]; then
  log "cargo fmt --check"
  cargo fmt --all -- --check; record "cargo fmt" $?
  log "cargo clippy --release"
  cargo clippy --release --locked --all-targets -- -D warnings 2>&1 | tail -n 20; record "cargo clippy" "${PIPESTATUS[0]}"
  log "cargo test --release"
  cargo test --release --locked 2>&1 | tee "$KLAMM_CACHE/cargo-test.log" | grep -E '^(test |running|test result|error|failures|---- )' ; record "cargo test" "${PIPESTATUS[0]}"
  # cargo fuzz targets for the request decoder and the batch parser, built from the broker's
  # sources without RocksDB; longer runs: fuzz/run.sh 600.
  log "cargo fuzz (${KLAMM_FUZZ_SECONDS:-30} s per target)"
  bash fuzz/run.sh "${KLAMM_FUZZ_SECONDS:-30}" </dev/null; record "cargo fuzz" $?
fi

if [ "$what" = all ] || [ "$what" = compat ]; then
  if [ -n "$only" ]; then
    log "compat: $only"
    start=$SECONDS
    bash "compat-tests/$only/run.sh" </dev/null; rc=$?
    record "compat $only" $rc
    echo "compat $only: exit $rc in $((SECONDS - start)) s"
  else
    # Two lanes at once: every suite starts brokers of its own on free ports, and most of
    # their time is spent waiting (rebalances, timeouts, client start-up), not computing.
    # Each suite's output is printed whole when it ends, so the log reads one suite at a
    # time. Lane A: the two longest suites (about 9 minutes together); lane B: the rest, in
    # name order (about 10).
    logdir=$(mktemp -d)
    lane_a=(python librdkafka)
    lane_b=()
    for suite in compat-tests/*/run.sh; do
      name=$(basename "$(dirname "$suite")")
      [[ " ${lane_a[*]} " == *" $name "* ]] || lane_b+=("$name")
    done
    run_lane() {
      local name start rc
      for name in "$@"; do
        [ -f "compat-tests/$name/run.sh" ] || continue
        start=$SECONDS
        bash "compat-tests/$name/run.sh" </dev/null >"$logdir/$name.log" 2>&1; rc=$?
        {
          flock 9
          log "compat: $name (exit $rc in $((SECONDS - start)) s)"
          cat "$logdir/$name.log"
          echo "$name $rc" >>"$logdir/results"
        } 9>"$logdir/lock"
      done
    }
    run_lane "${lane_a[@]}" &
    run_lane "${lane_b[@]}" &
    wait
    while read -r name rc; do record "compat $name" "$rc"; done <"$logdir/results"
    for name in "${lane_a[@]}" "${lane_b[@]}"; do
      [ -f "compat-tests/$name/run.sh" ] && ! grep -q "^$name " "$logdir/results" && record "compat $name (no result)" 1
    done
    rm -rf "$logdir"
  fi
fi

log "summary"
for f in "${failures[@]}"; do echo "FAILED: $f"; done
echo "test.sh: $passed passed, $failed failed in $((SECONDS - t0)) s"
[ "$failed" -eq 0 ]
