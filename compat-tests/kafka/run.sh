#!/usr/bin/env bash
# The reference-broker suite: Klamm's ApiVersions against a real Apache Kafka 4.4.0, API by
# API, checked against the table in COMPAT.md ("ApiVersions against Kafka 4.4").
#   KLAMM_BIN    broker binary (default /root/.cache/klamm/target/release/klamm)
#   KLAMM_CACHE  where kafka.sh keeps the Kafka jars (default ~/.cache/klamm)
# Needs a JDK 17+ and Maven (./test.sh installs them) and python3 (standard library only).
# Extra arguments go to apiversions_compare.py (e.g. --self-check).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export KLAMM_BIN="${KLAMM_BIN:-/root/.cache/klamm/target/release/klamm}"

for tool in java mvn python3; do
  command -v "$tool" >/dev/null || { echo "kafka suite: $tool not found (./test.sh installs it)"; exit 1; }
done
[ -x "$KLAMM_BIN" ] || { echo "klamm binary not found at $KLAMM_BIN (set KLAMM_BIN)"; exit 1; }

# Fetches Kafka 4.4.0 from Maven Central the first time (a no-op afterwards).
"$here/kafka.sh" install >/dev/null
exec timeout -k 10 300 python3 "$here/apiversions_compare.py" "$@"
