"""The documentation's code: every Python block in docs/ and the README compiles, and the
getting-started guides (English and Chinese) show exactly the README's Quickstart files,
which tests/test_quickstart.py runs."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted([ROOT / "README.md", *(ROOT / "docs").rglob("*.md")])
PYTHON_BLOCK = re.compile(r"^```python\n(?P<code>.*?)^```$", re.M | re.S)
FILE_BLOCK = re.compile(r"^```python\n# (?P<name>[\w.]+\.py)\n(?P<code>.*?)^```$", re.M | re.S)


def files_shown(page: Path) -> dict[str, str]:
    """The ``# name.py`` blocks of a page, by name."""
    return {m["name"]: m["code"] for m in FILE_BLOCK.finditer(page.read_text("utf-8"))}


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_every_python_block_compiles(page: Path) -> None:
    for number, block in enumerate(PYTHON_BLOCK.finditer(page.read_text("utf-8")), 1):
        # Snippets may show async code as run inside a coroutine (top-level ``await``).
        flags = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
        compile(block["code"], f"{page.name}, block {number}", "exec", flags=flags)


@pytest.mark.parametrize("guide", ["docs/getting-started.md", "docs/zh_CN/getting-started.md"])
def test_the_getting_started_guides_show_the_readme_quickstart(guide: str) -> None:
    shown = files_shown(ROOT / guide)
    assert shown == files_shown(ROOT / "README.md")
    assert sorted(shown) == ["app.py", "test_app.py"]
