"""The README's Quickstart, run as a newcomer would: its app and its tests copied out of the
README into a directory of their own and run by pytest in a subprocess.

``WECOM_QUICKSTART_PYTHON`` names the interpreter to run them with (default: this one).
``scripts/release_check.sh`` points it at a clean virtualenv holding only the built wheel
and pytest, so the Quickstart is also tested against the package as users install it.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: A README code block that is a file: ```python, then a first line ``# name.py``.
FILE_BLOCK = re.compile(r"^```python\n# (?P<name>[\w.]+\.py)\n(?P<code>.*?)^```$", re.M | re.S)


def readme_files() -> dict[str, str]:
    """The files the README's Quickstart shows, by name."""
    readme = (ROOT / "README.md").read_text("utf-8")
    return {m["name"]: m["code"] for m in FILE_BLOCK.finditer(readme)}


def test_the_quickstart_shows_an_app_factory_and_its_tests() -> None:
    files = readme_files()
    assert sorted(files) == ["app.py", "test_app.py"]
    assert "def create_app(config=None):" in files["app.py"]
    assert "from app import create_app" in files["test_app.py"]


def test_the_quickstart_tests_pass(tmp_path: Path) -> None:
    files = readme_files()
    for name, code in files.items():
        (tmp_path / name).write_text(code, "utf-8")
    python = os.environ.get("WECOM_QUICKSTART_PYTHON", sys.executable)
    # A newcomer's shell: no WECOM_* settings that the factory would read.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WECOM_", "PYTHONPATH"))}
    result = subprocess.run(
        [python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "error", "test_app.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    tests = files["test_app.py"].count("\ndef test_")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{tests} passed" in result.stdout, result.stdout
