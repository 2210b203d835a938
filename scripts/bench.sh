#!/usr/bin/env bash
# Benchmarks, each printing ratios against a reference measured in the same run.
#   scripts/bench.sh              crypto, then e2e (the targets of issues 2, 4 and 7)
#   scripts/bench.sh crypto       bench/crypto_bench.py: against wechatpy 1.8.18 and the primitive floor
#   scripts/bench.sh e2e          bench/e2e_bench.py: gunicorn, plain route vs the middleware (+Redis dedup)
#   scripts/bench.sh dedup        bench/dedup_bench.py: CPU per callback of dedup in memory and Redis
#   scripts/bench.sh pipeline     bench/pipeline_bench.py: CPU per callback against plain Flask and wechatpy glue
#   scripts/bench.sh asgi         bench/asgi_bench.py: event-loop blocking; uvicorn against plain Starlette
#   scripts/bench.sh longconn     bench/longconn_bench.py: AI bot over the long connection against the official SDK
#   scripts/bench.sh soak         bench/soak_bench.py: valid, retried and hostile traffic; RSS growth
#   scripts/bench.sh fuzz         bench/fuzz_middleware.py: atheris for FUZZ_SECONDS (60) seconds
# Arguments after the name go to that benchmark (e.g. scripts/bench.sh e2e --seconds 5).
set -euo pipefail
cd "$(dirname "$0")/.."
which=${1:-all}
shift || true
extras="test,bench"
[ "$which" = fuzz ] && extras="test,bench,fuzz"
bash scripts/bootstrap.sh "$extras"
py=${WECOM_VENV:-.venv}/bin/python
case "$which" in
    all) "$py" bench/crypto_bench.py && "$py" bench/pipeline_bench.py && "$py" bench/e2e_bench.py ;;
    crypto | e2e | dedup | soak | pipeline | asgi | longconn) "$py" "bench/${which}_bench.py" "$@" ;;
    fuzz) "$py" bench/fuzz_middleware.py "-max_total_time=${FUZZ_SECONDS:-60}" "$@" ;;
    *) echo "usage: scripts/bench.sh [crypto|e2e|dedup|soak|pipeline|asgi|longconn|fuzz] [args...]" >&2; exit 2 ;;
esac
