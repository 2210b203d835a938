"""Run deferred WeCom handlers on RQ workers (the ``rq`` extra), sharing the app's Redis.

The default runs ``deferred=True`` handlers on a thread pool inside each web
worker: simple, and right while one machine serves the traffic. Choose RQ when
deferred work is heavy or long (an LLM call, a report), when it must survive a
web worker restart, or when it should scale on machines of its own::

    from redis import Redis
    from rq import Queue
    from flask_wecom.rq import RQDeferrer

    queue = Queue("wecom", connection=Redis.from_url(os.environ["WECOM_REDIS_URL"]))
    wecom = WeCom(app, deferrer=RQDeferrer(queue, "myproject.app:app"))

and run workers with ``rq worker wecom --url $WECOM_REDIS_URL``. A job carries
only the WeCom instance's name and the decrypted plaintext (the queue is as
private as your Redis); the worker imports the app, parses the message, runs the
handler in a request context (``current_message`` works) and sends its reply with
message/send.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, cast

from flask import Flask

if TYPE_CHECKING:
    from rq import Queue

__all__ = ["RQDeferrer", "run_deferred"]


class RQDeferrer:
    """Enqueue deferred handlers on an RQ queue.

    :param queue: the :class:`rq.Queue` (on the same Redis as ``WECOM_REDIS_URL``, or any).
    :param app_path: ``"module:variable"`` of the Flask app, importable by the workers.
    :param job_timeout: seconds a handler may run before RQ stops it.
    """

    def __init__(self, queue: Queue, app_path: str, *, job_timeout: int = 600) -> None:
        if ":" not in app_path:
            raise ValueError(f"app_path must be 'module:variable', got {app_path!r}")
        self.queue = queue
        self.app_path = app_path
        self.job_timeout = job_timeout

    def defer(self, wecom_name: str, plaintext: bytes) -> None:
        """Enqueue :func:`run_deferred` for this callback."""
        self.queue.enqueue(
            run_deferred, self.app_path, wecom_name, plaintext, job_timeout=self.job_timeout
        )


def run_deferred(app_path: str, wecom_name: str, plaintext: bytes) -> None:
    """The RQ job: handle one deferred callback in the worker and send the reply."""
    module_name, _, variable = app_path.partition(":")
    app = cast(Flask, getattr(importlib.import_module(module_name), variable))
    wecom: Any = app.extensions["wecom"].mounted[wecom_name]
    wecom.run_deferred(app, plaintext)
