#!/usr/bin/env bash
# Java kafka-clients compatibility suite for Klamm (JUnit 5, Maven).
#   compat-tests/java/run.sh [extra mvn args, e.g. -Dtest=AdminTest]
# Runs the suite once per kafka-clients line (KAFKA_VERSIONS, default "4.4.0 3.9.1"), in
# sequence; every line must pass. Environment:
#   KLAMM_BIN         broker binary (default /root/.cache/klamm/target/release/klamm)
#   COMPAT_BROKER     klamm (default) or kafka: the reference broker via compat-tests/kafka/kafka.sh
#   JAVA_COMPAT_TAGS  JUnit tag expression to run (e.g. klamm-bug, "(klamm-bug | !klamm-bug) & !bench"
#                     for every test, bench for the benchmarks); unset: every test except those
#                     tagged klamm-bug, and no benchmark
#   KAFKA_VERSIONS    the kafka-clients versions to run, in order
# Maven is the only installer (batch mode, no stdin); the local repository is ~/.m2.
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"

export KLAMM_BIN="${KLAMM_BIN:-/root/.cache/klamm/target/release/klamm}"
versions="${KAFKA_VERSIONS:-4.4.0 3.9.1}"
broker="${COMPAT_BROKER:-klamm}"

if ! command -v mvn >/dev/null 2>&1; then
    echo "mvn not found (the suite needs Maven 3.8+ and a JDK 17+)" >&2
    exit 1
fi
if [ "$broker" != "kafka" ] && [ ! -x "$KLAMM_BIN" ]; then
    echo "klamm binary not found at $KLAMM_BIN (set KLAMM_BIN)" >&2
    exit 1
fi

if [ -n "${JAVA_COMPAT_TAGS:-}" ]; then
    tag_args=(-Dcompat.groups="$JAVA_COMPAT_TAGS" -Dcompat.excludedGroups=)
else
    tag_args=(-Dcompat.groups= -Dcompat.excludedGroups=klamm-bug,bench)
fi

# Surefire's report of one line: a "Tests run" line per class, failing tests, the total.
summarize() {
    local reports="$1" label="$2"
    awk -v label="$label" '
        function attr(line, name,   m) {
            if (match(line, " " name "=\"[^\"]*\"")) {
                m = substr(line, RSTART + length(name) + 3, RLENGTH - length(name) - 4)
                return m
            }
            return ""
        }
        /<testsuite / {
            cls = attr($0, "name"); t = attr($0, "tests"); f = attr($0, "failures")
            e = attr($0, "errors"); s = attr($0, "skipped"); tm = attr($0, "time")
            printf "Tests run: %d, Failures: %d, Errors: %d, Skipped: %d, Time elapsed: %s s - in %s\n", t, f, e, s, tm, cls
            T += t; F += f; E += e; S += s
        }
        /<testcase / { tc = attr($0, "classname") "." attr($0, "name") }
        /<failure|<error/ { bad[++nbad] = tc }
        /<skipped/ { skipped[++nskip] = tc }
        END {
            for (i = 1; i <= nbad; i++) printf "  FAILED: %s\n", bad[i]
            for (i = 1; i <= nskip; i++) printf "  skipped: %s\n", skipped[i]
            printf "%s: Tests run: %d, Failures: %d, Errors: %d, Skipped: %d\n", label, T, F, E, S
            if (T - S <= 0) exit 3
            if (F + E > 0) exit 2
        }' $(ls "$reports"/TEST-*.xml 2>/dev/null | sort)
}

overall=0
start_all=$(date +%s)
for v in $versions; do
    echo "=== kafka-clients $v against $broker ==="
    reports="target/kafka-$v/surefire-reports"
    rm -rf "$reports"
    start=$(date +%s)
    # 3.x clients: the pom's kafka-clients-3 profile leaves the 4.x-only test classes out
    # (it activates by itself for 3.9.1 only)
    profile_args=()
    case "$v" in 3.*) profile_args=(-Pkafka-clients-3) ;; esac
    mvn -B -q -T1 -Dkafka.version="$v" "${tag_args[@]}" "${profile_args[@]}" \
        -Dsurefire.failIfNoSpecifiedTests=false test "$@" </dev/null
    mvn_rc=$?
    took=$(( $(date +%s) - start ))
    if ls "$reports"/TEST-*.xml >/dev/null 2>&1; then
        summarize "$reports" "kafka-clients $v (${took}s)"
        sum_rc=$?
    else
        echo "kafka-clients $v: no test report (mvn exit $mvn_rc)"
        sum_rc=3
    fi
    if [ "$mvn_rc" != 0 ] || [ "$sum_rc" != 0 ]; then
        [ "$sum_rc" = 3 ] && echo "kafka-clients $v: no test ran (all skipped or none found): counting as failure"
        echo "kafka-clients $v: FAILED (mvn exit $mvn_rc)"
        overall=1
    fi
done
echo "java compat: $([ $overall = 0 ] && echo passed || echo FAILED) in $(( $(date +%s) - start_all ))s ($versions)"
exit $overall
