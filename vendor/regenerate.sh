#!/usr/bin/env bash
# Regenerates vendor/kafka-protocol's message types from one Kafka release's JSON message
# definitions, with the crate's own generator (vendor/protocol_codegen):
#
#   vendor/regenerate.sh 4.4.0
#
# The definitions come from that release's kafka-clients jar on Maven Central (it carries
# common/message/*.json), so nothing but Maven Central and crates.io is needed. Only
# src/messages.rs and src/messages/*.rs are rewritten; the `Klamm:` patches live in other files.
set -euo pipefail
version="${1:?usage: vendor/regenerate.sh KAFKA_VERSION (e.g. 4.4.0)}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
jar="$HOME/.m2/repository/org/apache/kafka/kafka-clients/$version/kafka-clients-$version.jar"
if [ ! -f "$jar" ]; then
    mvn -q dependency:get -Dartifact="org.apache.kafka:kafka-clients:$version" -Dtransitive=false
fi
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
unzip -q "$jar" 'common/message/*.json' -d "$tmp"
cargo run --release --quiet --manifest-path "$here/protocol_codegen/Cargo.toml" \
    --target-dir "$tmp/target" -- "$tmp/common/message" "$here/kafka-protocol/src/messages"
rustfmt --edition 2021 "$here/kafka-protocol/src/messages.rs" "$here"/kafka-protocol/src/messages/*.rs
echo "regenerated from kafka-clients $version: $(ls "$here/kafka-protocol/src/messages" | wc -l) message files"
