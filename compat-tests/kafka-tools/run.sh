#!/usr/bin/env bash
# Kafka Streams 4.4 and Kafka's own command-line tools (org.apache.kafka:kafka-tools 4.4.0)
# against Klamm.
#   KLAMM_BIN=/path/to/klamm compat-tests/kafka-tools/run.sh [extra mvn args, e.g. -Dtest=CliToolsTest]
# Maven (JUnit 5, surefire) runs the tests; each test class starts its own broker on a free
# loopback port with a fresh data dir and stops it by PID. The CLI tools run as child JVMs
# with the classpath Maven resolved (target/tools.classpath).
# Environment:
#   KLAMM_BIN         the broker binary (default /root/.cache/klamm/target/release/klamm)
#   COMPAT_BROKER     klamm (default) or kafka: the reference Apache Kafka 4.4 started by
#                     compat-tests/kafka/kafka.sh (then the klamm-bug tests run too)
#   KAFKA_TOOLS_BUGS  1: also run the tests tagged klamm-bug (known Klamm differences)
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"

export KLAMM_BIN="${KLAMM_BIN:-/root/.cache/klamm/target/release/klamm}"
broker="${COMPAT_BROKER:-klamm}"
excluded="klamm-bug"
if [ "$broker" = kafka ]; then
    excluded=""
    [ -f ../kafka/kafka.sh ] || { echo "COMPAT_BROKER=kafka but ../kafka/kafka.sh is missing"; echo "kafka-tools: 0 passed, 1 failed"; exit 1; }
elif [ ! -x "$KLAMM_BIN" ]; then
    echo "klamm binary not found at $KLAMM_BIN (set KLAMM_BIN)"
    echo "kafka-tools: 0 passed, 1 failed"
    exit 1
fi
[ "${KAFKA_TOOLS_BUGS:-0}" = 1 ] && excluded=""
command -v mvn >/dev/null || { echo "mvn not found (apt-get install maven)"; exit 1; }

# 2 shared cores: one Maven thread, small heaps, C1 only.
export MAVEN_OPTS="${MAVEN_OPTS:--Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1}"
rm -rf target/surefire-reports target/work
start=$(date +%s)
timeout -k 10 600 mvn -B -T1 --no-transfer-progress -Dstyle.color=never \
    -DexcludedGroups="$excluded" test "$@" </dev/null
rc=$?
secs=$(( $(date +%s) - start ))

# The runner's summary, from the JUnit XML reports: fail when no test ran.
read -r tests failures errors skipped < <(python3 - <<'PY'
import glob, xml.etree.ElementTree as ET
t = f = e = s = 0
for path in glob.glob("target/surefire-reports/TEST-*.xml"):
    r = ET.parse(path).getroot()
    t += int(r.get("tests", 0)); f += int(r.get("failures", 0))
    e += int(r.get("errors", 0)); s += int(r.get("skipped", 0))
print(t, f, e, s)
PY
)
passed=$(( tests - failures - errors - skipped ))
echo   # Maven leaves its colour reset codes without a newline
echo "kafka-tools ($broker): $tests tests, $passed passed, $failures failed, $errors errors, $skipped skipped in ${secs}s (excluded tags: ${excluded:-none})"
if [ "$rc" -ne 0 ]; then exit "$rc"; fi
if [ $(( failures + errors )) -ne 0 ]; then exit 1; fi
if [ "$tests" -eq 0 ]; then echo "no test ran"; exit 1; fi
# Every test skipped by its own assumption (e.g. -Dtest=StreamsGroupProtocolTest on a broker
# without streams groups): not a failure, but said so.
if [ "$passed" -eq 0 ]; then echo "no test ran: all $skipped skipped (see the reasons in target/surefire-reports)"; exit 0; fi
exit 0
