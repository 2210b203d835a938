#!/usr/bin/env bash
# Mutation testing with mutmut 3 (the `dev` extra), one module at a time, with its fast tests,
# on a throw-away copy of the tree: the working tree is never mutated.
#
# Usage: scripts/mutate.sh [--worktree] [MODULE...]
#   MODULE      a key of TESTS below (default: all of them)
#   --worktree  copy the working tree (tracked and untracked, not ignored files) instead of HEAD
# Environment:
#   MUTATE_SECONDS   time limit per module (default 600: the pipeline, 1053 mutants, takes 8-9 minutes at 2 children); a cut-short run says so
#   MUTATE_CHILDREN  parallel mutant runs (default 2)
#   MUTATE_KEEP      keep the copies (their path is printed) to browse with `mutmut browse`
#
# Prints per module: mutants, killed (timeouts count as killed), survived, not checked, the kill
# rate over the mutants that were checked, and the rate with the mutants that only change the
# arguments of a `raise` (error-message text) set aside; then each other survivor with its
# change (`mutmut show NAME` in a kept copy shows the diff). Exits 1 when a module is under 90%
# with the message mutants aside, or has mutants no test reaches.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
SECONDS_PER_MODULE="${MUTATE_SECONDS:-600}"
CHILDREN="${MUTATE_CHILDREN:-2}"
TARGET=90

# module -> its fast tests
declare -A TESTS=(
    [dedup]="tests/test_dedup.py"
    [pipeline]="tests/test_pipeline.py"
    [crypto]="tests/test_crypto.py tests/test_compat.py"
    [envelope]="tests/test_crypto.py"
    [safe_xml]="tests/test_safe_xml.py tests/test_crypto.py"
)

from_worktree=0
modules=()
for arg in "$@"; do
    case "$arg" in
        --worktree) from_worktree=1 ;;
        -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
        *)
            [[ -n "${TESTS[$arg]:-}" ]] || { echo "unknown module: $arg (known: ${!TESTS[*]})" >&2; exit 2; }
            modules+=("$arg") ;;
    esac
done
[[ ${#modules[@]} -gt 0 ]] || modules=(crypto envelope safe_xml dedup pipeline)
"$PYTHON" -c "import mutmut" 2>/dev/null || { echo "mutmut missing: pip install -e '.[dev]'" >&2; exit 2; }

copy_tree() {  # $1: destination
    if [[ $from_worktree == 1 ]]; then
        (cd "$ROOT" && git ls-files -z -co --exclude-standard | tar --null -cf - -T - 2>/dev/null) \
            | tar -xf - -C "$1"
    else
        git -C "$ROOT" archive --format=tar HEAD | tar -xf - -C "$1"
    fi
}

below=0
for module in "${modules[@]}"; do
    work="$(mktemp -d "${TMPDIR:-/tmp}/mutate-$module.XXXXXX")"
    copy_tree "$work"
    # mutmut reads [mutmut] from setup.cfg; only the copy's setup.cfg gets it.
    {
        echo
        echo "[mutmut]"
        echo "source_paths = flask_wecom/"
        echo "only_mutate = flask_wecom/$module.py"
        echo "pytest_add_cli_args_test_selection ="
        for test in ${TESTS[$module]}; do echo "    $test"; done
        echo "pytest_add_cli_args ="
        echo "    -p"
        echo "    no:cacheprovider"
        echo "also_copy ="
        echo "    example_app/"
        echo "    harness/"
    } >>"$work/setup.cfg"
    echo "== $module: ${TESTS[$module]} (copy: $work, limit ${SECONDS_PER_MODULE}s)"
    status=0
    (cd "$work" && timeout --signal=INT "$SECONDS_PER_MODULE" \
        "$PYTHON" -m mutmut run --max-children "$CHILDREN" >"$work/mutmut.log" 2>&1) || status=$?
    [[ $status == 0 ]] || echo "   mutmut stopped with status $status (124/130: time limit); counts are partial"
    (cd "$work" && "$PYTHON" -m mutmut export-cicd-stats >/dev/null 2>&1) || true
    if ! (cd "$work" && "$PYTHON" - "$module" "$TARGET" <<'EOF'
import json, re, subprocess, sys

module, target = sys.argv[1], float(sys.argv[2])
try:
    stats = json.load(open("mutants/mutmut-cicd-stats.json"))
except OSError:
    print("   no statistics: see mutmut.log")
    sys.exit(1)


def mutmut(*args):
    return subprocess.run([sys.executable, "-m", "mutmut", *args], capture_output=True,
                          text=True, check=False).stdout


def changed_lines(name):
    diff = mutmut("show", name).splitlines()
    body = [line for line in diff if not line.startswith(("---", "+++", "@@"))]
    first = next((i for i, line in enumerate(body) if line[:1] in "-+"), None)
    return body, first


def in_a_raise(name):
    """The mutant only touches the arguments of a raise (its message), not its class."""
    body, first = changed_lines(name)
    if first is None:
        return False
    removed = [line[1:] for line in body if line.startswith("-")]
    added = [line[1:] for line in body if line.startswith("+")]
    before = [line[1:] for line in body[max(0, first - 3):first] if line.startswith(" ")]
    raised = "raise " in "".join(removed) or any(
        line.strip().startswith("raise ") and line.rstrip().endswith("(") for line in before)
    same_class = re.findall(r"raise (\w+)", "".join(removed)) == re.findall(
        r"raise (\w+)", "".join(added))
    return raised and same_class


survivors = [line.split(":")[0].strip() for line in mutmut("results").splitlines()
             if line.strip().endswith(": survived")]
messages = [name for name in survivors if in_a_raise(name)]
killed = stats.get("killed", 0) + stats.get("timeout", 0)
survived = stats.get("survived", 0)
checked = killed + survived
unchecked = stats.get("total", 0) - checked
rate = 100.0 * killed / checked if checked else 0.0
aside = 100.0 * killed / (checked - len(messages)) if checked > len(messages) else 0.0
print(f"   {module}: {stats.get('total', 0)} mutants, killed {killed}, survived {survived} "
      f"({len(messages)} only in an error message), not checked {unchecked}")
print(f"   {module}: {rate:.1f}% killed; {aside:.1f}% with the error-message mutants aside")
for name in survivors:
    if name not in messages:
        body, first = changed_lines(name)
        change = next((line for line in body[first:] if line.startswith("+")), "")
        print(f"     survived {name.rsplit('.', 1)[-1]}: {change[1:].strip()[:90]}")
sys.exit(0 if aside >= target and not unchecked else 1)
EOF
    ); then
        below=1
    fi
    [[ -n "${MUTATE_KEEP:-}" ]] || rm -rf "$work"
done
exit "$below"
