#!/usr/bin/env bash
# Run the Python client compatibility suite against a Klamm binary.
#   KLAMM_BIN    broker binary (default /root/.cache/klamm/target/release/klamm)
#   COMPAT_BROKER=kafka  run it against a real Apache Kafka 4.4 instead (compat-tests/kafka)
#   KLAMM_CACHE  cache dir for the venv (default ~/.cache/klamm)
#   PYTEST_WORKERS  parallel pytest workers (pytest-xdist; default 4 against Klamm, 1 against
#                   Kafka); every test starts its own broker, so they do not share one
# Extra arguments are passed to pytest (e.g. -k confluent, -x, -n 0 for one process).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cache="${KLAMM_CACHE:-$HOME/.cache/klamm}"
venv="$cache/venv-python"
export KLAMM_BIN="${KLAMM_BIN:-/root/.cache/klamm/target/release/klamm}"
export PYTHONDONTWRITEBYTECODE=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 \
       PIP_ROOT_USER_ACTION=ignore

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else "$@"; fi; }

make_venv() {
  rm -rf "$venv"
  mkdir -p "$cache"
  if ! python3 -m venv "$venv" 2>/dev/null; then
    # Debian's python3 lacks ensurepip until python3-venv is installed.
    echo "python3 -m venv failed; installing python3-venv" >&2
    rm -rf "$venv"
    pyver="$(python3 -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv \
      || as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "python${pyver}-venv"
    python3 -m venv "$venv"
  fi
}

# Reuse the venv unless it is broken or was made by a different python3.
want_py="$(python3 -c 'import sys; print(sys.version.split()[0])')"
if ! have_py="$("$venv/bin/python" -c 'import sys; print(sys.version.split()[0])' 2>/dev/null)" \
   || [ "$have_py" != "$want_py" ]; then
  make_venv
fi

stamp="$venv/.klamm-requirements"
if ! cmp -s "$here/requirements.txt" "$stamp"; then
  "$venv/bin/python" -m pip install -q -r "$here/requirements.txt"
  cp "$here/requirements.txt" "$stamp"
fi

if [ "${COMPAT_BROKER:-klamm}" = kafka ]; then
  # The reference broker: a real Kafka 4.4 per test, run by compat-tests/kafka/kafka.sh.
  "$repo/compat-tests/kafka/kafka.sh" install >/dev/null
elif [ ! -x "$KLAMM_BIN" ]; then
  echo "klamm binary not found at $KLAMM_BIN (set KLAMM_BIN)" >&2
  exit 1
fi

cd "$repo"
set +e
if [ "${COMPAT_BROKER:-klamm}" = kafka ]; then workers="${PYTEST_WORKERS:-1}"; else workers="${PYTEST_WORKERS:-4}"; fi
"$venv/bin/python" -m pytest -v -n "$workers" -c "$here/pytest.ini" --rootdir "$here" "$here" "$@"
rc=$?
set -e
if [ "$rc" = 5 ]; then
  echo "pytest collected no tests: counting as failure" >&2
  exit 1
fi
exit "$rc"
