#!/usr/bin/env bash
# librdkafka's own integration test suite (Debian's source package, 2.0.2) against Klamm.
#
#   compat-tests/librdkafka/run.sh                 CI subset: the allow-listed tests, quick mode (-Q)
#   compat-tests/librdkafka/run.sh --full          every broker test (allow- and skip-listed), full mode
#   compat-tests/librdkafka/run.sh --tests 0017,0090 [--debug protocol,broker]   some tests, any list
#
# Other options are passed to rdk_suite.py (--jobs N, --timeout S, --multiplier X, --logdir DIR,
# --kafka-version V, --tail N, --idempotent, --quick yes|no, --extra-budget S,
# --group-initial-rebalance-delay-ms N, --cluster 0101,0107, --on sasl_ssl:0081); see
# `python3 rdk_suite.py --help` and README.md.  Tests tagged [cluster] in the lists run against a three-broker Klamm cluster
# on ZooKeeper (installed from apt when missing); tests tagged [ssl], [sasl_ssl] or [authorizer]
# against a broker with TLS, SASL and ACLs (certificates made with openssl at run time).
#
# The source (apt-get source librdkafka, from a deb-src entry added for the machine's own Debian
# suites) and its build are cached in ${KLAMM_CACHE:-$HOME/.cache/klamm}/librdkafka-src, so a
# second run neither refetches nor rebuilds.  Ends with "librdkafka: N passed, M failed"
# (allow-listed tests only) and exits non-zero when an allow-listed test did not pass.
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export CI="${CI:-true}"
export DEBIAN_FRONTEND=noninteractive

KLAMM_CACHE="${KLAMM_CACHE:-$HOME/.cache/klamm}"
KLAMM_BIN="${KLAMM_BIN:-$KLAMM_CACHE/target/release/klamm}"
RDK_VERSION=2.0.2
SRC_ROOT="$KLAMM_CACHE/librdkafka-src"
SRC="$SRC_ROOT/librdkafka-$RDK_VERSION"
BUILD_LOG="$SRC_ROOT/build.log"
# Bump when the build recipe changes, to force a rebuild of the cached tree.
BUILD_KEY="v3 configure-defaults libs tests/build single-node-rf init-txn-nowait"

say() { printf '=== librdkafka: %s\n' "$*"; }
fail_setup() {
    echo "librdkafka: setup failed: $*"
    local n
    n=$(grep -cvE '^[[:space:]]*(#|$)' "$here/allowlist.txt" 2>/dev/null || echo 1)
    echo "librdkafka: 0 passed, $n failed"
    exit 1
}

sudo_cmd=()
if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null 2>&1 && sudo_cmd=(sudo -n) || true
fi
apt_updated=0
apt_update() {
    [ "$apt_updated" = 1 ] && return 0
    "${sudo_cmd[@]}" apt-get update -q </dev/null >"$SRC_ROOT/apt-update.log" 2>&1 \
        || { tail -n 20 "$SRC_ROOT/apt-update.log"; return 1; }
    apt_updated=1
}

mkdir -p "$SRC_ROOT" || fail_setup "cannot create $SRC_ROOT"
[ -x "$KLAMM_BIN" ] || fail_setup "no broker binary at $KLAMM_BIN (build it, or set KLAMM_BIN)"

# ------------------------------------------------------------------ build dependencies
# dpkg-dev: apt-get source; the rest: librdkafka's and its test runner's build (codecs, TLS,
# rapidjson for the tests that check statistics JSON).  coreutils' stdbuf is used by the driver;
# openssl makes the CA and certificates of the [ssl]/[sasl_ssl] tests' broker and clients.
deps=(dpkg-dev build-essential pkg-config zlib1g-dev libssl-dev libzstd-dev liblz4-dev
      rapidjson-dev python3 openssl)
missing=()
for p in "${deps[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    say "apt-get install ${missing[*]}"
    apt_update || fail_setup "apt-get update failed"
    "${sudo_cmd[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}" </dev/null \
        >"$SRC_ROOT/apt-install.log" 2>&1 \
        || { tail -n 20 "$SRC_ROOT/apt-install.log"; fail_setup "apt-get install ${missing[*]} failed"; }
fi

# The tests tagged [cluster] (and name@cluster entries) run against three Klamm brokers on a
# ZooKeeper of their own: Debian's zookeeper package.  Without it only those tests fail.
if [ ! -x /usr/share/zookeeper/bin/zkServer.sh ]; then
    say "apt-get install zookeeper (for the three-broker cluster tests)"
    if apt_update && "${sudo_cmd[@]}" apt-get install -y -q --no-install-recommends zookeeper </dev/null \
        >"$SRC_ROOT/apt-install-zookeeper.log" 2>&1; then
        :
    else
        tail -n 20 "$SRC_ROOT/apt-install-zookeeper.log" 2>/dev/null
        say "could not install zookeeper: the cluster tests will fail"
    fi
fi

# ------------------------------------------------------------------ source + build (cached)
(
    # One fetch/build at a time per cache directory.
    flock -w 1800 9 || { echo "timed out waiting for the build lock"; exit 1; }

    if [ ! -f "$SRC/tests/test.c" ]; then
        if ! apt-cache showsrc librdkafka 2>/dev/null | grep -q '^Package: librdkafka'; then
            # A deb-src entry for the suites the machine already uses, in a file of its own.
            srcfile=/etc/apt/sources.list.d/klamm-deb-src.sources
            if [ -f /etc/apt/sources.list.d/debian.sources ]; then
                say "adding $srcfile (deb-src for the suites in debian.sources)"
                sed -E 's/^Types:[[:space:]]*deb[[:space:]]*$/Types: deb-src/' \
                    /etc/apt/sources.list.d/debian.sources \
                    | "${sudo_cmd[@]}" tee "$srcfile" >/dev/null
            elif [ -f /etc/apt/sources.list ]; then
                srcfile=/etc/apt/sources.list.d/klamm-deb-src.list
                say "adding $srcfile (deb-src for the suites in sources.list)"
                sed -nE 's/^deb[[:space:]]+/deb-src /p' /etc/apt/sources.list \
                    | "${sudo_cmd[@]}" tee "$srcfile" >/dev/null
            else
                echo "no Debian sources list found to derive a deb-src entry from"; exit 1
            fi
            apt_updated=0
            apt_update || exit 1
        fi
        say "apt-get source librdkafka"
        dl="$SRC_ROOT/download"
        rm -rf "$dl" "$SRC" && mkdir -p "$dl" && chmod 755 "$dl"
        (cd "$dl" && apt-get source -q librdkafka </dev/null) >"$SRC_ROOT/apt-source.log" 2>&1 \
            || { tail -n 20 "$SRC_ROOT/apt-source.log"; echo "apt-get source librdkafka failed"; exit 1; }
        if [ ! -f "$dl/librdkafka-$RDK_VERSION/tests/test.c" ]; then
            echo "apt-get source did not give librdkafka $RDK_VERSION (got: $(ls "$dl" | tr '\n' ' '))"
            echo "the allow-list is for $RDK_VERSION"; exit 1
        fi
        mv "$dl/librdkafka-$RDK_VERSION" "$SRC" && rm -rf "$dl"
    fi

    if [ -x "$SRC/tests/test-runner" ] && [ "$(cat "$SRC/.klamm-build" 2>/dev/null)" = "$BUILD_KEY" ]; then
        say "using cached build in $SRC"
        exit 0
    fi
    say "building librdkafka $RDK_VERSION and its test runner (log: $BUILD_LOG)"
    rm -f "$SRC/.klamm-build"
    # Single node: the tests that hard-code replication factor 3 for their topics (written
    # for librdkafka's 3-broker trivup cluster) ask for the broker default (-1) instead.
    # Nothing else in them changes; Kafka itself refuses factor 3 on one broker too.
    sed -i -E 's/(test_create_topic\([^;]*), 3\);/\1, -1);/' \
        "$SRC/tests/0103-transactions.c" "$SRC/tests/0107-topic_recreate.c"
    # 0103's "multiple init_transactions(): timeout on first" expects init_transactions(p, 1)
    # to time out: it assumes that connecting, FindCoordinator, a second connection and
    # InitProducerId take a Kafka broker more than 1 ms (Kafka appends to the replicated
    # __transaction_state first). Klamm often answers all of it within that millisecond, and
    # the call then succeeds. A timeout of 0 (RD_POLL_NOWAIT) checks the same client
    # behaviour (a retriable TIMED_OUT, then resumed by the next call) without the race.
    # Only that call changes: the earlier (p, 1) call after a finished init expects __STATE.
    sed -i -E '/timeout on first/,/rd_kafka_init_transactions\(p, 1\)/ s/rd_kafka_init_transactions\(p, 1\)/rd_kafka_init_transactions(p, 0)/' \
        "$SRC/tests/0103-transactions.c"
    start=$(date +%s)
    jobs=$(nproc 2>/dev/null || echo 2)
    {
        cd "$SRC" &&
        ./configure &&
        make -j"$jobs" libs &&
        make -j"$jobs" -C tests build
    } </dev/null >"$BUILD_LOG" 2>&1 || { tail -n 40 "$BUILD_LOG"; echo "build failed"; exit 1; }
    echo "$BUILD_KEY" >"$SRC/.klamm-build"
    say "built in $(( $(date +%s) - start ))s"
) 9>"$SRC_ROOT/.lock" || fail_setup "could not fetch or build librdkafka (see above)"

# ------------------------------------------------------------------ run
full=()
args=()
for a in "$@"; do
    case "$a" in
        --full) full=(--full) ;;
        *) args+=("$a") ;;
    esac
done

# Bounded overall: the driver's per-test timeouts bound each test; this bounds the whole run.
overall=900
[ ${#full[@]} -gt 0 ] && overall=5400
timeout -k 30 "$overall" python3 "$here/rdk_suite.py" \
    --src "$SRC" --klamm-bin "$KLAMM_BIN" \
    --allowlist "$here/allowlist.txt" --skiplist "$here/skiplist.txt" \
    "${full[@]}" "${args[@]}" </dev/null
rc=$?
# On timeout's SIGTERM the driver stops its tests and brokers and prints its own summary;
# only if it had to be killed outright is the closing line missing.
if [ $rc -eq 137 ]; then
    echo "librdkafka: the run exceeded ${overall}s and was killed"
    n=$(grep -cvE '^[[:space:]]*(#|$)' "$here/allowlist.txt" 2>/dev/null || echo 1)
    echo "librdkafka: 0 passed, $n failed"
fi
exit $rc
