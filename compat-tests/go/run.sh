#!/usr/bin/env bash
# Go client compatibility suite (franz-go, IBM/sarama, segmentio/kafka-go) for Klamm.
#   KLAMM_BIN=/path/to/klamm compat-tests/go/run.sh [go test -run REGEX]
#   COMPAT_BROKER=kafka compat-tests/go/run.sh      # against the reference Apache Kafka
#   GO_COMPAT_KLAMM_BUGS=1 compat-tests/go/run.sh   # also run the tests of known Klamm bugs
# Downloads the pinned modules (go.sum) through the Go module proxy, runs go vet, then
# go test (one package, tests one after another, a fresh broker per test) and prints
# go test's summary. Exits non-zero if a test failed or none ran.
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"

export GOTOOLCHAIN=local GOFLAGS="${GOFLAGS:-} -mod=readonly"
if ! command -v go >/dev/null 2>&1; then
    echo "go not found (Go 1.26 or newer is needed)"
    echo "go: 0 passed, 1 failed"
    exit 1
fi

if [ "${COMPAT_BROKER:-klamm}" != kafka ]; then
    export KLAMM_BIN="${KLAMM_BIN:-/root/.cache/klamm/target/release/klamm}"
    if [ ! -x "$KLAMM_BIN" ]; then
        echo "klamm binary not found at $KLAMM_BIN (set KLAMM_BIN)"
        echo "go: 0 passed, 1 failed"
        exit 1
    fi
fi

if ! go mod download </dev/null >go-download.log 2>&1; then
    tail -20 go-download.log
    echo "go mod download failed"
    echo "go: 0 passed, 1 failed"
    exit 1
fi
rm -f go-download.log
if ! go vet ./... </dev/null; then
    echo "go vet failed"
    echo "go: 0 passed, 1 failed"
    exit 1
fi

log="$(mktemp -t klamm-go-compat.XXXXXX)"
start=$(date +%s)
# -p 1 and sequential tests: the machine is shared; each test starts its own broker.
# Klamm starts in milliseconds (the suite takes under a minute); Kafka takes ~10 s a test.
limit=400
[ "${COMPAT_BROKER:-klamm}" = kafka ] && limit=1500
timeout -k 10 $((limit + 20)) go test -p 1 -count=1 -timeout ${limit}s -v "$@" ./... </dev/null 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
secs=$(( $(date +%s) - start ))

pass=$(grep -cE '^\s*--- PASS' "$log")
fail=$(grep -cE '^\s*--- FAIL' "$log")
skip=$(grep -cE '^\s*--- SKIP' "$log")
echo
echo "===== summary (tests and subtests) ====="
for lib in Franz Sarama KafkaGo Cross Cluster Security Acl ShareGroup DelegationToken; do
    p=$(grep -cE "^\s*--- PASS: Test${lib}" "$log")
    f=$(grep -cE "^\s*--- FAIL: Test${lib}" "$log")
    s=$(grep -cE "^\s*--- SKIP: Test${lib}" "$log")
    printf '%-15s %3d passed %3d failed %3d skipped\n' "$lib" "$p" "$f" "$s"
done
grep -E '^\s*--- FAIL' "$log" | sed 's/^/FAILED: /'
grep -E '^\s*--- SKIP' "$log" | sed 's/^ */SKIPPED: /'
grep -E 'KLAMM-BUG:' "$log" | sed 's/^ */  /'
grep -E '^(ok|FAIL|---)\s' "$log" | grep -vE '^--- ' || true
rm -f "$log"
echo "go: $pass passed, $fail failed, $skip skipped in ${secs}s"
if [ "$rc" -ne 0 ]; then
    exit "$rc"
fi
if [ "$pass" -eq 0 ]; then
    echo "no test ran"
    exit 1
fi
exit 0
