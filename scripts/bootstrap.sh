#!/usr/bin/env bash
# Shared set-up for scripts/test.sh, scripts/demo.sh and scripts/bench.sh: a project
# virtualenv with the package and the extras named in $1, and redis-server on PATH.
set -euo pipefail
cd "$(dirname "$0")/.."
extras=${1:-test}
venv=${WECOM_VENV:-.venv}
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -e ".[$extras]"
if ! command -v redis-server >/dev/null 2>&1; then
    echo "installing redis-server (Debian package) ..." >&2
    sudo_cmd=""
    [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq redis-server >/dev/null
fi
