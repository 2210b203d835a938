#!/usr/bin/env bash
# The README's demo, from a fresh machine: install, make fresh credentials, start the example
# app under gunicorn on 127.0.0.1, and send it what WeCom would (a URL verification, a text,
# the MENU_TODAY menu click and a subscribe), printing each decrypted reply and its timing.
# gunicorn is stopped on exit; the exit status is non-zero if any step fails.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh test
venv=${WECOM_VENV:-.venv}
py="$venv/bin/python"
wecom="$venv/bin/flask-wecom"

# Fresh credentials for this run only: WECOM_TOKEN and WECOM_ENCODING_AES_KEY.
credentials=$("$wecom" genkey --token)
# shellcheck disable=SC2086  # NAME=value lines of letters and digits: split on purpose
export $credentials
export WECOM_CORP_ID="ww$("$py" -c 'import secrets; print(secrets.token_hex(8))')"

port=$("$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export WECOM_BIND="127.0.0.1:$port"
url="http://$WECOM_BIND/wecom"
log=$(mktemp -t wecom-demo-gunicorn.XXXXXX)

"$py" -m gunicorn --config example_app/gunicorn.conf.py example_app.app:app >"$log" 2>&1 &
gunicorn_pid=$!
stop_gunicorn() {
    kill "$gunicorn_pid" 2>/dev/null || true
    wait "$gunicorn_pid" 2>/dev/null || true
    rm -f "$log"
}
trap stop_gunicorn EXIT

echo "Starting the example app on $url ..."
answers() {
    "$py" -c 'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 0.2)' \
        "$port" 2>/dev/null
}
for _ in $(seq 100); do
    answers && break
    if ! kill -0 "$gunicorn_pid" 2>/dev/null; then
        echo "gunicorn exited early:" >&2
        cat "$log" >&2
        exit 1
    fi
    sleep 0.1
done
if ! answers; then
    echo "gunicorn did not answer on $WECOM_BIND:" >&2
    cat "$log" >&2
    exit 1
fi

echo
"$wecom" simulate "$url" --text "hello from the demo" --click MENU_TODAY --subscribe
