"""Sphinx configuration for the flask_wecom documentation (MyST Markdown, furo).

Built by ``scripts/test.sh`` with ``-W`` (warnings are errors)::

    python -m sphinx -W --keep-going -b html docs docs/_build/html
"""

from __future__ import annotations

from importlib.metadata import version as _version
from pathlib import Path
from typing import Any

project = "flask_wecom"
author = "the flask_wecom authors"
copyright = "2026, the flask_wecom authors"  # noqa: A001 (Sphinx's name)
release = _version("flask-wecom")
version = ".".join(release.split(".")[:2])

extensions = ["myst_parser", "sphinx.ext.autodoc"]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
exclude_patterns = ["_build"]
language = "en"

# Headings up to ### get anchors, so pages can link to [x](page.md#some-heading).
myst_heading_anchors = 3
myst_enable_extensions = ["colon_fence", "deflist"]

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": True}

#: Reference pages other work writes (the event catalogue, the long-connection protocol):
#: the index's ``OPTIONAL_PAGES`` line lists those that exist, so the build passes with -W
#: before and after they land.
OPTIONAL_PAGES = ("events", "protocol")

html_theme = "furo"
html_title = f"flask_wecom {release}"


def _list_optional_pages(app: Any, docname: str, source: list[str]) -> None:
    """``source-read`` hook: put the optional pages that exist into the index's toctree."""
    if docname == "index":
        here = Path(__file__).parent
        present = "".join(f"{name}\n" for name in OPTIONAL_PAGES if (here / f"{name}.md").exists())
        source[0] = source[0].replace("OPTIONAL_PAGES\n", present)


def setup(app: Any) -> None:
    """Sphinx extension hook of this configuration."""
    app.connect("source-read", _list_optional_pages)
