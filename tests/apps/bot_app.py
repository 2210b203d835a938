"""An AI-bot app that streams its answer (tests/test_aibot.py); answers carry the worker pid."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

from flask import Flask, Response

from flask_wecom import AIBot
from flask_wecom.messages import Message

app = Flask(__name__)
app.config.update({k: v for k, v in os.environ.items() if k.startswith("WECOM_")})
bot = AIBot(app)


@bot.message("text")
def answer(message: Message) -> Iterator[str]:
    for word in ["Thinking", " about", f" {message.content}", "."]:
        time.sleep(0.15)
        yield word


@app.after_request
def worker_pid(response: Response) -> Response:
    response.headers["X-Worker-Pid"] = str(os.getpid())
    return response
