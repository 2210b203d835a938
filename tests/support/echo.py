"""The plaintext echo every middleware test app answers (plain WSGI, Flask, Django)."""

from __future__ import annotations

from typing import Any


def reply_for(environ: dict[str, Any]) -> bytes:
    """What every test app answers: an empty body for events, else an echo of the content."""
    message = environ["wecom.message"]
    if message.is_event:
        return b""
    length = int(environ["CONTENT_LENGTH"])
    assert environ["wsgi.input"].read(length) == environ["wecom.plaintext"]
    return f"<xml><Content><![CDATA[echo: {message.content}]]></Content></xml>".encode()
