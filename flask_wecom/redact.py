"""A logging filter that blanks secrets in URLs and JSON before a record is written.

WeCom's API takes ``access_token`` and ``corpsecret`` in the query string, and urllib3
logs every request line (query included) at DEBUG level. :class:`RedactingFilter`
rewrites a record's message and arguments so that the value of each parameter named in
:data:`SECRET_NAMES` reads ``[REDACTED]``, in query strings (``corpsecret=abc``) and in
JSON (``"access_token": "abc"``).

Usage::

    install_redaction("urllib3.connectionpool", logging.getLogger("myapp.wecom"))

A filter on a logger applies to the records logged on that very logger, not to those of
its children, so it is installed on each logger that may print a URL:
:mod:`flask_wecom.client` installs it on its own logger and on urllib3's at import.
Framework-free: the standard library only.
"""

from __future__ import annotations

import logging
import re
from typing import Any

__all__ = ["REDACTED", "SECRET_NAMES", "RedactingFilter", "install_redaction", "redact"]

#: What a secret value is replaced with.
REDACTED = "[REDACTED]"
#: Parameter names whose values are secrets: API credentials and one-time codes.
SECRET_NAMES = (
    "access_token",
    "corpsecret",
    "secret",
    "suite_access_token",
    "suite_secret",
    "suite_ticket",
    "provider_access_token",
    "provider_secret",
    "permanent_code",
    "pre_auth_code",
    "auth_code",
    "response_code",
    "jsapi_ticket",
    "encoding_aes_key",
    "token",
)

_NAMES = "|".join(sorted(map(re.escape, SECRET_NAMES), key=len, reverse=True))
# name=value in a query string (also percent-encoded '=' as %3D), stopping at & # space or quote
_QUERY = re.compile(rf"(?i)(?<![A-Za-z0-9_])({_NAMES})(=|%3D)[^&#\s\"'<>]*")
# "name": "value" in JSON
_JSON = re.compile(rf'(?i)("(?:{_NAMES})"\s*:\s*")(?:[^"\\]|\\.)*(")')


def redact(text: str) -> str:
    """``text`` with the value of every secret parameter replaced by :data:`REDACTED`."""
    if "=" not in text and '"' not in text and "%3" not in text.upper():
        return text
    text = _QUERY.sub(rf"\1\2{REDACTED}", text)
    return _JSON.sub(rf"\1{REDACTED}\2", text)


def _redacted(value: Any) -> Any:
    """A log argument with secrets blanked: strings rewritten, URLs and others as text."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, int | float | bool) or value is None:
        return value
    text = str(value)
    cleaned = redact(text)
    return value if cleaned == text else cleaned


class RedactingFilter(logging.Filter):
    """Blank secret parameter values in a record's message and arguments; never drops one."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite ``record`` in place; always keep it."""
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, dict):
            record.args = {key: _redacted(value) for key, value in record.args.items()}
        elif record.args:
            record.args = tuple(_redacted(value) for value in record.args)
        return True


_FILTER = RedactingFilter()


def install_redaction(*loggers: logging.Logger | str) -> None:
    """Add the (one, shared) :class:`RedactingFilter` to each logger, by object or name.

    Installing twice on a logger adds it once.
    """
    for logger in loggers:
        target = logging.getLogger(logger) if isinstance(logger, str) else logger
        if _FILTER not in target.filters:
            target.addFilter(_FILTER)
