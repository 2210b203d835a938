#!/usr/bin/env bash
# The whole test suite from a fresh machine: virtualenv, install, type check, lint, pytest.
# Extra arguments go to pytest (e.g. scripts/test.sh -k crypto).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh test,dev,docs
py=${WECOM_VENV:-.venv}/bin/python
"$py" -m mypy
"$py" -m ruff check flask_wecom tests bench example_app
"$py" -m ruff format --check flask_wecom tests bench example_app
"$py" -m pytest "$@"
