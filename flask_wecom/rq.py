"""Run deferred WeCom handlers on RQ workers (the ``rq`` extra), sharing the app's Redis.

The default runs ``deferred=True`` handlers on a thread pool inside each web
worker: simple, and right while one machine serves the traffic. Choose a task queue
when deferred work is heavy or long (an LLM call, a report), when it must survive a
web worker restart, or when it should scale on machines of its own. With RQ::

    from redis import Redis
    from rq import Queue
    from flask_wecom.rq import RQDeferrer

    queue = Queue("wecom", connection=Redis.from_url(os.environ["WECOM_REDIS_URL"]))
    wecom = WeCom(app, deferrer=RQDeferrer(queue, "myproject.app:app"))

and run workers with ``rq worker wecom --url $WECOM_REDIS_URL``. The job is
:func:`flask_wecom.deferral.run_deferred` (Celery: :mod:`flask_wecom.celery_deferrer`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .deferral import check_app_path, run_deferred

if TYPE_CHECKING:
    from rq import Queue

#: ``run_deferred`` stays importable from here for jobs enqueued by earlier versions.
__all__ = ["RQDeferrer", "run_deferred"]


class RQDeferrer:
    """Enqueue deferred handlers on an RQ queue.

    :param queue: the :class:`rq.Queue` (on the same Redis as ``WECOM_REDIS_URL``, or any).
    :param app_path: ``"module:variable"`` of the Flask app, importable by the workers.
    :param job_timeout: seconds a handler may run before RQ stops it.
    """

    def __init__(self, queue: Queue, app_path: str, *, job_timeout: int = 600) -> None:
        self.queue = queue
        self.app_path = check_app_path(app_path)
        self.job_timeout = job_timeout

    def defer(self, wecom_name: str, plaintext: bytes) -> None:
        """Enqueue :func:`~flask_wecom.deferral.run_deferred` for this callback."""
        self.queue.enqueue(
            run_deferred, self.app_path, wecom_name, plaintext, job_timeout=self.job_timeout
        )
