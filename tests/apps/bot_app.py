"""An AI-bot app that streams its answer (tests/test_aibot.py); answers carry the worker pid."""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from flask import Flask

from flask_wecom import AIBot
from flask_wecom.messages import Message

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

app = Flask(__name__)
app.config.update({k: v for k, v in os.environ.items() if k.startswith("WECOM_")})
bot = AIBot(app)


@bot.message("text")
def answer(message: Message) -> Iterator[str]:
    pause = 0.8 if (message.content or "").startswith("slowly") else 0.15
    for word in ["Thinking", " about", f" {message.content}", "."]:
        time.sleep(pause)
        yield word


def with_worker_pid(app: WSGIApplication) -> WSGIApplication:
    """Tag every answer with the worker's pid: callbacks never reach Flask's request hooks."""

    def tagged(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            return start_response(status, [*headers, ("X-Worker-Pid", str(os.getpid()))], exc_info)

        return app(environ, start)

    return tagged


app.wsgi_app = with_worker_pid(app.wsgi_app)  # type: ignore[method-assign]
