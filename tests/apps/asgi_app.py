"""The FastAPI example for tests/test_asgi_uvicorn.py; every answer names its worker's pid."""

from __future__ import annotations

import os
from typing import Any

from example_app.fastapi_app import app as example


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The example, with an ``x-worker-pid`` header on every answer."""

    async def tagged(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            message = {
                **message,
                "headers": [*message["headers"], (b"x-worker-pid", str(os.getpid()).encode())],
            }
        await send(message)

    await example(scope, receive, tagged)
