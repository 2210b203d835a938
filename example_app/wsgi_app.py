"""The example bot on plain WSGI, no framework: ``gunicorn example_app.wsgi_app:application``.

Configured from the environment like the Flask app (``WECOM_TOKEN``,
``WECOM_ENCODING_AES_KEY``, ``WECOM_CORP_ID``, and ``WECOM_SECRET``/``WECOM_AGENT_ID`` for
late replies, ``WECOM_REDIS_URL`` for several workers).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from example_app.bot import receiver
from flask_wecom.middleware import WeComMiddleware

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment


def not_found(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    """Every path but the callback URL."""
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"not found\n"]


application = WeComMiddleware.from_config(not_found, receiver)
