#!/usr/bin/env bash
# Release checks, run by scripts/test.sh after the full suite (which runs on the project
# virtualenv's Python, 3.11):
#   1. build the sdist and the wheel, and `twine check --strict` them;
#   2. install the wheel alone (and pytest) into a clean Python 3.11 virtualenv and run the
#      README's Quickstart test with it, from outside the source tree;
#   3. on Python 3.10, 3.12 and 3.13, install the wheel into a clean virtualenv with what the
#      smoke subset needs (pytest, hypothesis, and redis and requests for tests/conftest.py's
#      fixture modules) and run the subset (crypto, messages, the Quickstart) from a copy of
#      tests/ outside the source tree, so that flask_wecom is the installed wheel.
# Interpreters: pyenv's ($PYENV_ROOT/versions/X.Y.*), else pythonX.Y on PATH. Each step prints
# its time. WECOM_MATRIX="3.10 3.12" narrows step 3.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
py=${WECOM_VENV:-.venv}/bin/python
smoke_tests=(tests/test_crypto.py tests/test_messages.py tests/test_quickstart.py)
smoke_needs=(pytest hypothesis redis requests)
work=$(mktemp -d -t wecom-release.XXXXXX)
trap 'rm -rf "$work"' EXIT

find_python() {  # find_python 3.12 -> the path of a Python 3.12 interpreter that runs
    local candidate
    for candidate in \
        $(ls -d "${PYENV_ROOT:-$HOME/.pyenv}/versions/$1".*/bin/python3 2>/dev/null | sort -rV) \
        "$(command -v "python$1" || true)"; do
        # pyenv's shims exist for every version but run only the selected ones: try each.
        if [ -n "$candidate" ] && "$candidate" -c 'import venv' 2>/dev/null; then
            echo "$candidate"
            return 0
        fi
    done
    echo "release_check: no Python $1 (install it, e.g. pyenv install $1)" >&2
    return 1
}

clean_venv() {  # clean_venv VERSION DIR PIP_ARGS... -> a virtualenv in DIR with PIP_ARGS installed
    local version=$1 dir=$2
    shift 2
    "$(find_python "$version")" -m venv "$dir"
    "$dir/bin/python" -m pip install --quiet --disable-pip-version-check "$@"
    # The package must come from the wheel in this virtualenv, never from the source tree.
    (cd "$work" && "$dir/bin/python" -c '
import sys, flask_wecom
where = flask_wecom.__file__
assert where.startswith(sys.prefix), f"flask_wecom imported from {where}, not {sys.prefix}"
')
}

step() {  # step NAME: print the time the previous step took and start a new one
    [ -z "${step_name:-}" ] || echo "release_check: $step_name took $((SECONDS - step_start)) s"
    step_name=$1
    step_start=$SECONDS
}

step "sdist and wheel, twine check"
"$py" -m build --sdist --wheel --outdir "$work/dist" . >"$work/build.log" 2>&1 \
    || { cat "$work/build.log" >&2; exit 1; }
"$py" -m twine check --strict "$work"/dist/*
wheel=$(ls "$work"/dist/*.whl)

step "Quickstart from the wheel in a clean Python 3.11 virtualenv"
clean_venv 3.11 "$work/venv-3.11" "$wheel" pytest
WECOM_QUICKSTART_PYTHON="$work/venv-3.11/bin/python" \
    "$py" -m pytest -q -p no:cacheprovider tests/test_quickstart.py

# A copy of the tests, the docs and the README (some tests read them) outside the source tree.
mkdir "$work/tree"
cp -r tests harness docs README.md "$work/tree/"
for version in ${WECOM_MATRIX:-3.10 3.12 3.13}; do
    step "smoke tests on Python $version"
    clean_venv "$version" "$work/venv-$version" "$wheel" "${smoke_needs[@]}"
    (cd "$work/tree" && "$work/venv-$version/bin/python" -m pytest -q -p no:cacheprovider \
        -c "$root/pyproject.toml" --rootdir . "${smoke_tests[@]}")
done
step ""
