"""The job body of deferred handlers on a task queue, shared by RQ and Celery.

A queued job carries only the ``"module:variable"`` path of the Flask app, the WeCom
instance's name and the decrypted plaintext (the queue is as private as your Redis). The
worker imports the app, parses the message, runs the handler in the app's context
(``current_message`` works) and sends its reply with message/send. The job neither knows nor
cares which queue ran it: :class:`flask_wecom.rq.RQDeferrer` and
:class:`flask_wecom.celery_deferrer.CeleryDeferrer` both enqueue :func:`run_deferred`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from flask import Flask

__all__ = ["check_app_path", "run_deferred"]


def check_app_path(app_path: str) -> str:
    """Return ``app_path`` if it has the ``"module:variable"`` form, else raise ValueError."""
    module_name, colon, variable = app_path.partition(":")
    if not (module_name and colon and variable):
        raise ValueError(f"app_path must be 'module:variable', got {app_path!r}")
    return app_path


def run_deferred(app_path: str, wecom_name: str, plaintext: bytes) -> None:
    """Handle one deferred callback in a queue worker and send its reply with message/send."""
    module_name, _, variable = app_path.partition(":")
    app = cast("Flask", getattr(importlib.import_module(module_name), variable))
    wecom: Any = app.extensions["wecom"].mounted[wecom_name]
    wecom.run_deferred(app, plaintext)
