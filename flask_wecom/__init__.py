"""flask_wecom: receive WeCom (企业微信) callbacks in any WSGI application.

The core (crypto, envelopes, messages, replies, middleware) imports no web
framework; the Flask extension is loaded only when ``WeCom`` is first used.
"""

from __future__ import annotations

from typing import Any

from .crypto import Decrypted as Decrypted
from .crypto import WeComCrypto as WeComCrypto
from .crypto import signature as signature
from .errors import WeComError as WeComError

__all__ = ["Decrypted", "WeComCrypto", "WeComError", "signature"]


def __getattr__(name: str) -> Any:
    if name == "__version__":
        from importlib.metadata import version

        return version("flask-wecom")
    raise AttributeError(f"module 'flask_wecom' has no attribute {name!r}")
