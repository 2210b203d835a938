"""Layers point one way: the core imports without Flask, werkzeug or pytest."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import flask_wecom

PACKAGE = Path(flask_wecom.__file__).parent
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
