#!/usr/bin/env bash
# Benchmarks, each printing ratios against a reference measured in the same run.
#   scripts/bench.sh            all benchmarks
#   scripts/bench.sh crypto     only bench/crypto_bench.py (likewise: e2e, soak)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh "test,bench"
py=${WECOM_VENV:-.venv}/bin/python
which=${1:-all}
shift || true
status=0
for name in crypto e2e soak; do
    if [ "$which" = all ] || [ "$which" = "$name" ]; then
        if [ -f "bench/${name}_bench.py" ]; then
            echo "== bench/${name}_bench.py"
            "$py" "bench/${name}_bench.py" "$@" || status=1
        fi
    fi
done
exit $status
