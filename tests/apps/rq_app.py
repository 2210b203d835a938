"""A Flask app whose deferred handler runs on an RQ worker (tests/test_rq.py)."""

from __future__ import annotations

import os

from flask import Flask
from redis import Redis
from rq import Queue

from flask_wecom import WeCom
from flask_wecom.messages import Message
from flask_wecom.rq import RQDeferrer

app = Flask(__name__)
app.config.update({k: v for k, v in os.environ.items() if k.startswith("WECOM_")})
queue = Queue("wecom-test", connection=Redis.from_url(os.environ["WECOM_REDIS_URL"]))
wecom = WeCom(app, deferrer=RQDeferrer(queue, "tests.apps.rq_app:app"))


@wecom.message("text", deferred=True)
def report(message: Message) -> str:
    return f"report for {message.content} (pid {os.getpid()})"
