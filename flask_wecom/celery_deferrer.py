"""Run deferred WeCom handlers on Celery workers (the ``celery`` extra).

The Celery counterpart of :class:`flask_wecom.rq.RQDeferrer`, with the same contract and the
same job body (:func:`flask_wecom.deferral.run_deferred`)::

    from celery import Celery  # type: ignore[import-untyped]
    from flask_wecom.celery_deferrer import CeleryDeferrer

    celery = Celery("myproject", broker=os.environ["WECOM_REDIS_URL"])
    wecom = WeCom(app, deferrer=CeleryDeferrer(celery, "myproject.app:app", queue="wecom"))

and run workers with ``celery -A myproject.app:celery worker -Q wecom``: the module that builds
the deferrer registers the task, so the workers must import it. A task carries the app path,
the WeCom instance's name and the decrypted plaintext (as UTF-8 in Celery's JSON messages: use
a broker as private as your Redis). Use a time limit rather than retries: a handler that
failed is logged by the worker and not run again, as with the in-process runner.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .deferral import check_app_path, run_deferred

if TYPE_CHECKING:
    from celery import Celery  # type: ignore[import-untyped]

__all__ = ["TASK_NAME", "CeleryDeferrer"]

#: The Celery task name of :func:`flask_wecom.deferral.run_deferred`.
TASK_NAME = "flask_wecom.run_deferred"


class CeleryDeferrer:
    """Send deferred handlers to Celery workers.

    :param celery: the Celery application; the task is registered on it (once, by name).
    :param app_path: ``"module:variable"`` of the Flask app, importable by the workers.
    :param queue: the queue to send to (None: Celery's default routing).
    :param time_limit: seconds a handler may run before the worker stops it.
    """

    def __init__(
        self, celery: Celery, app_path: str, *, queue: str | None = None, time_limit: int = 600
    ) -> None:
        self.app_path = check_app_path(app_path)
        self.queue = queue
        self.time_limit = time_limit
        task: Any = celery.tasks.get(TASK_NAME) or celery.task(name=TASK_NAME)(run_deferred)
        self.task = task

    def defer(self, wecom_name: str, plaintext: bytes) -> None:
        """Send :func:`~flask_wecom.deferral.run_deferred` for this callback to a worker."""
        self.task.apply_async(
            (self.app_path, wecom_name, plaintext), queue=self.queue, time_limit=self.time_limit
        )
