"""A Flask app whose deferred handler runs on a Celery worker (tests/test_celery.py)."""

from __future__ import annotations

import os

from celery import Celery
from flask import Flask

from flask_wecom import WeCom
from flask_wecom.celery_deferrer import CeleryDeferrer
from flask_wecom.messages import Message

app = Flask(__name__)
app.config.update({k: v for k, v in os.environ.items() if k.startswith("WECOM_")})
celery = Celery("celery_app", broker=os.environ["WECOM_REDIS_URL"])
wecom = WeCom(app, deferrer=CeleryDeferrer(celery, "tests.apps.celery_app:app", queue="wecom-test"))


@wecom.message("text", deferred=True)
def report(message: Message) -> str:
    return f"report for {message.content} (pid {os.getpid()})"
