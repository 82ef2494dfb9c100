#!/usr/bin/env bash
# kafkajs compatibility suite for Klamm.
#   KLAMM_BIN=/path/to/klamm compat-tests/kafkajs/run.sh [test/FILE.test.js ...]
# (with no arguments, every test file; with arguments, only those, relative to this directory)
# Installs the pinned npm packages into ./node_modules (npm ci from package-lock.json,
# skipped when the lock file has not changed since the last install), then runs
# node's built-in test runner.  Each test file starts its own broker on a free port with
# a temporary data dir and stops it by PID.  kcat is used to read back what kafkajs wrote.
# Extra environment: KAFKAJS_LOG=DEBUG (kafkajs log level), KCAT_DEBUG=protocol,broker.
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"

if ! command -v kcat >/dev/null 2>&1; then
    echo "kcat not found; installing the Debian package 'kcat'"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q </dev/null >/dev/null && apt-get install -y -q --no-install-recommends kcat </dev/null >/dev/null
fi

# The optional native codecs (lz4, zstd via cppzst) are built with node-gyp; cppzst's
# sources need C++17 to compile against the headers of Node >= 20.
export CXXFLAGS="${CXXFLAGS:-} -std=c++17"
stamp="node_modules/.klamm-install-stamp"
want="$(cat package.json package-lock.json | sha256sum | cut -d' ' -f1) $(node --version)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "npm ci (kafkajs and codec packages)..."
    if ! npm ci --no-audit --no-fund --loglevel=error </dev/null >npm-install.log 2>&1; then
        tail -30 npm-install.log
        echo "npm ci failed"
        echo "kafkajs: 0 passed, 1 failed"
        exit 1
    fi
    echo "$want" >"$stamp"
fi

export KLAMM_BIN="${KLAMM_BIN:-/root/.cache/klamm/target/release/klamm}"
if [ ! -x "$KLAMM_BIN" ]; then
    echo "klamm binary not found at $KLAMM_BIN (set KLAMM_BIN)"
    echo "kafkajs: 0 passed, 1 failed"
    exit 1
fi
files=("$@")
if [ ${#files[@]} -eq 0 ]; then
    files=(test/admin.test.js test/producer.test.js test/consumer.test.js test/configs.test.js test/retention.test.js
        test/transactions.test.js test/faults.test.js test/security.test.js test/acls.test.js)
fi
exec timeout -k 10 600 node --test --test-concurrency=1 --test-reporter=spec "${files[@]}"
