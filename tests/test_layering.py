"""Layers point one way: the core imports without Flask, werkzeug or pytest."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import flask_wecom

PACKAGE = Path(flask_wecom.__file__).parent
REPOSITORY = PACKAGE.parent
#: Modules allowed to import a web framework or pytest.
TOP_LAYER = {"extension", "rq", "pytest_plugin", "cli", "__main__"}
CORE_MODULES = sorted(
    p.stem for p in PACKAGE.glob("*.py") if p.stem not in TOP_LAYER and p.stem != "__init__"
)

BLOCKER = """
import sys
for name in ("flask", "werkzeug", "pytest", "django"):
    sys.modules[name] = None  # any import of them now raises ImportError
import importlib
module = importlib.import_module(sys.argv[1])
{check}
"""


@pytest.mark.parametrize("module", ["flask_wecom", *(f"flask_wecom.{m}" for m in CORE_MODULES)])
def test_core_imports_without_web_frameworks(module: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", BLOCKER.format(check=""), module],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_crypto_works_without_flask() -> None:
    check = (
        "c = module.WeComCrypto('t', 'jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C', 'id')\n"
        "assert c.decrypt(c.encrypt(b'ok')) == (b'ok', 'id')\n"
        "print('crypto ok')"
    )
    result = subprocess.run(
        [sys.executable, "-c", BLOCKER.format(check=check), "flask_wecom.crypto"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.stdout.strip() == "crypto ok", result.stderr


def imported_modules(path: Path) -> set[str]:
    """Every absolute module name ``path`` imports, at any depth of its code."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def from_package(names: set[str], package: str) -> set[str]:
    return {name for name in names if name == package or name.startswith(package + ".")}


@pytest.mark.parametrize(
    "path",
    sorted([*REPOSITORY.glob("bench/*.py"), *REPOSITORY.glob("harness/*.py")]),
    ids=lambda path: f"{path.parent.name}/{path.name}",
)
def test_benches_and_harness_import_nothing_from_tests(path: Path) -> None:
    assert from_package(imported_modules(path), "tests") == set()


def test_no_test_module_imports_another() -> None:
    """Tests share code through tests/support (and worker apps in tests/apps), never through
    another test module."""
    shared = ("tests.support", "tests.apps")
    offenders = {
        str(path.relative_to(REPOSITORY)): sorted(
            name
            for name in from_package(imported_modules(path), "tests")
            if not name.startswith(shared)
        )
        for path in REPOSITORY.glob("tests/**/*.py")
    }
    assert {path: names for path, names in offenders.items() if names} == {}
