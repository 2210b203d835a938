#!/usr/bin/env bash
# The whole test suite from a fresh machine: virtualenv, install, type check, lint, format
# check, the docs built with warnings as errors, pytest, then the release checks (sdist and
# wheel, twine, the wheel's Quickstart in a clean virtualenv, Python 3.10/3.12/3.13 smoke).
# Extra arguments go to pytest (e.g. scripts/test.sh -k crypto); they skip the release checks.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh test,dev,docs
py=${WECOM_VENV:-.venv}/bin/python
"$py" -m mypy
"$py" -m ruff check flask_wecom tests harness bench example_app
"$py" -m ruff format --check flask_wecom tests harness bench example_app
"$py" -m sphinx -W --keep-going -q -b html docs docs/_build/html
"$py" -m pytest "$@"
if [ "$#" -eq 0 ]; then
    bash scripts/release_check.sh
fi
