#!/usr/bin/env bash
# kcat compatibility suite for Klamm.
#   KLAMM_BIN=/path/to/klamm compat-tests/kcat/run.sh
# Installs kcat (Debian package "kcat", which ships /usr/bin/kcat) when missing, then runs
# kcat_compat.py, which starts the broker on a free port with a temporary data dir, runs
# every case, stops the broker by PID and ends with "kcat: N passed, M failed".
# Extra environment: KCAT_DEBUG=protocol,broker (passed to kcat -d), KCAT_ONLY=name1,name2,
# KCAT_VERBOSE=1 (print kcat command lines).
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

if ! command -v kcat >/dev/null 2>&1; then
    echo "kcat not found; installing the Debian package 'kcat'"
    sudo_cmd=()
    if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null 2>&1; then sudo_cmd=(sudo -n); fi
    export DEBIAN_FRONTEND=noninteractive
    "${sudo_cmd[@]}" apt-get update -q </dev/null >/dev/null \
        && "${sudo_cmd[@]}" apt-get install -y -q --no-install-recommends kcat </dev/null >/dev/null
    if ! command -v kcat >/dev/null 2>&1; then
        echo "could not install kcat"
        echo "kcat: 0 passed, 1 failed"
        exit 1
    fi
fi

export KLAMM_BIN="${KLAMM_BIN:-/root/.cache/klamm/target/release/klamm}"
exec timeout -k 10 600 python3 "$here/kcat_compat.py" "$@"
