#!/usr/bin/env bash
# Klamm reliability battery: kill -9 cycles under an idempotent producer, a protocol fuzzer,
# connection floods, slow-loris clients, decompression bombs, and faults in a three-broker
# cluster on ZooKeeper, network partitions included (as root). See RELIABILITY.md.
#
#   compat-tests/reliability/run.sh            short form (CI, under ~2 minutes)
#   compat-tests/reliability/run.sh --long     the longer form whose figures RELIABILITY.md records
#   compat-tests/reliability/run.sh --only fuzz,bombs
#   compat-tests/reliability/run.sh --only cluster_chaos
#   compat-tests/reliability/run.sh --only cluster_partition   (root: network namespaces)
#
# Environment: KLAMM_BIN (default ~/.cache/klamm/target/release/klamm), KLAMM_CACHE (venv
# location, default ~/.cache/klamm), RELIABILITY_LONG=1 (= --long), RELIABILITY_BOMBS=0
# (skip the decompression bombs), RELIABILITY_STRICT=1 (known broker bugs fail the run),
# RELIABILITY_SEED, RELIABILITY_KEEP_LOGS=1, RELIABILITY_JSON=PATH (results as JSON).
# The last line is "reliability: N passed, M failed"; the exit status is non-zero on failure.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="${KLAMM_CACHE:-$HOME/.cache/klamm}"
venv="$cache/venv-reliability"
export KLAMM_BIN="${KLAMM_BIN:-$HOME/.cache/klamm/target/release/klamm}"
export PYTHONDONTWRITEBYTECODE=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 \
       PIP_ROOT_USER_ACTION=ignore

fail() { echo "$1" >&2; echo "reliability: 0 passed, 1 failed"; exit 1; }

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo -n "$@"; else "$@"; fi; }

# A venv of its own (not the Python suite's), so the two suites' pins can move separately.
make_venv() {
  rm -rf "$venv"
  mkdir -p "$cache"
  if ! python3 -m venv "$venv" 2>/dev/null; then
    # Debian's python3 lacks ensurepip until python3-venv is installed.
    echo "python3 -m venv failed; installing python3-venv" >&2
    rm -rf "$venv"
    pyver="$(python3 -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"
    as_root apt-get update -qq </dev/null
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv </dev/null \
      || as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "python${pyver}-venv" </dev/null
    python3 -m venv "$venv"
  fi
}

command -v python3 >/dev/null || fail "python3 not found"
# Reuse the venv unless it is broken or was made by a different python3.
want_py="$(python3 -c 'import sys; print(sys.version.split()[0])')"
if ! have_py="$("$venv/bin/python" -c 'import sys; print(sys.version.split()[0])' 2>/dev/null)" \
   || [ "$have_py" != "$want_py" ]; then
  make_venv || fail "could not create $venv"
fi
stamp="$venv/.klamm-requirements"
if ! cmp -s "$here/requirements.txt" "$stamp"; then
  "$venv/bin/python" -m pip install -q -r "$here/requirements.txt" </dev/null \
    || fail "pip install failed"
  cp "$here/requirements.txt" "$stamp"
fi

[ -x "$KLAMM_BIN" ] || fail "klamm binary not found at $KLAMM_BIN (set KLAMM_BIN)"

# The cluster cases (cluster_chaos, cluster_partition) run Debian's ZooKeeper, as
# tests/it/cluster.rs does; install it unless --only leaves both out. Without it they fail, they
# are not skipped. cluster_partition also needs root and `ip` (network namespaces); without
# them it fails too.
zk_server=/usr/share/zookeeper/bin/zkServer.sh
want_zk=1 prev=""
for a in "$@"; do
  case "$prev:$a" in
    --only:*) case ",$a," in *,cluster_chaos,*|*,cluster_partition,*) ;; *) want_zk=0 ;; esac ;;
    *:--only=*) case ",${a#--only=}," in *,cluster_chaos,*|*,cluster_partition,*) ;;
                  *) want_zk=0 ;; esac ;;
  esac
  prev="$a"
done
if [ "$want_zk" = 1 ] && [ ! -x "$zk_server" ]; then
  echo "$zk_server missing; installing zookeeper" >&2
  as_root apt-get update -qq </dev/null || true
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq zookeeper </dev/null \
    || echo "could not install zookeeper: cluster_chaos and cluster_partition will fail" >&2
fi

args=("$@")
[ -n "${RELIABILITY_JSON:-}" ] && args+=(--json "$RELIABILITY_JSON")
# The outer timeout only guards against a hang in the battery itself; every wait inside
# is bounded on its own.
limit=600
case " $* " in *" --long "*) limit=3600 ;; esac
[ "${RELIABILITY_LONG:-}" = 1 ] && limit=3600
exec timeout -k 10 "$limit" "$venv/bin/python" "$here/reliability.py" "${args[@]}"
