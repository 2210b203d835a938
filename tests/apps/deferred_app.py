"""A Flask app with one deferred handler, for the gunicorn test of the 5-second rule."""

from __future__ import annotations

import os
import time

from flask import Flask

from flask_wecom import WeCom
from flask_wecom.messages import Message

app = Flask(__name__)
app.config.update({k: v for k, v in os.environ.items() if k.startswith("WECOM_")})
wecom = WeCom(app)


@wecom.message("text", deferred=True)
def summarise(message: Message) -> str:
    time.sleep(1.0)  # a slow model or database
    return f"summary of: {message.content}"
