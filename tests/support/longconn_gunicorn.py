"""gunicorn config that runs the AI bot's long connection in every worker (docs/longconn.md).

The lease in Redis makes one worker hold the bot; the others stand by. Used by
tests/test_longconn_lease.py through ``GUNICORN_CMD_ARGS="-c tests/support/longconn_gunicorn.py"``.
"""

from __future__ import annotations

from typing import Any


def post_worker_init(worker: Any) -> None:
    """Start the long connection on a thread of the worker."""
    from flask_wecom.longconn import LongConnection
    from flask_wecom.stores import RedisStore
    from tests.support.longconn_app import app, bot

    worker.longconn = LongConnection(
        bot,
        app.config["WECOM_AIBOT_BOT_ID"],
        app.config["WECOM_AIBOT_LONGCONN_SECRET"],
        url=app.config["WECOM_AIBOT_LONGCONN_URL"],
        store=RedisStore(app.config["WECOM_REDIS_URL"]),
        scope=app.app_context,
        lease_ttl=1.0,
        standby_poll=0.1,
    ).start()


def worker_exit(server: Any, worker: Any) -> None:
    """Hand the bot over before the worker exits."""
    worker.longconn.stop(timeout=5)
