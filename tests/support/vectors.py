"""The test suite's shared credentials and the official known-answer vectors.

``KEY``, ``TOKEN`` and ``CORP_ID`` are those of WeCom's public sample (the vectors use them
too). The vectors are copied from ../shared/vectors into tests/vectors so that the suite is
self-contained.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

VECTORS = Path(__file__).parents[1] / "vectors"
KEY = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"
TOKEN = "QDG6eK"
CORP_ID = "wx5823bf96d3bd56c7"


def load(name: str) -> list[dict[str, Any]]:
    """Read one vector file copied from ../shared/vectors."""
    vectors: list[dict[str, Any]] = json.loads((VECTORS / f"{name}.json").read_text("utf-8"))
    return vectors


def vector_params(*names: str, kind: str | None = None) -> list[Any]:
    """The vectors of ``names`` as pytest params with readable ids."""
    return [
        pytest.param(v, id=f"{name}{i}-{v['kind']}")
        for name in names
        for i, v in enumerate(load(name), 1)
        if kind is None or v["kind"] == kind
    ]
