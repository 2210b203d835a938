"""A small WeCom (企业微信) app: echo, a custom menu, a welcome, contact sync, an AI bot.

Run it with gunicorn (see gunicorn.conf.py) after setting WECOM_TOKEN,
WECOM_ENCODING_AES_KEY and WECOM_CORP_ID (and WECOM_AIBOT_TOKEN,
WECOM_AIBOT_ENCODING_AES_KEY for the bot at /aibot); scripts/demo.sh does all of it.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Iterator

from flask import Flask

from flask_wecom import AIBot, Article, NewsReply, WeCom
from flask_wecom.messages import Message

app = Flask(__name__)
app.config.update({k: v for k, v in os.environ.items() if k.startswith("WECOM_")})
try:  # with the prometheus extra: metrics at /metrics (see flask_wecom.metrics)
    from flask_wecom.metrics import PrometheusMetrics

    metrics = PrometheusMetrics()
except ImportError:
    wecom = WeCom(app)
else:
    wecom = WeCom(app, hooks=[metrics])
    app.add_url_rule("/metrics", "metrics", metrics.flask_view)
log = logging.getLogger("example_app")


@wecom.message("text", content=re.compile(r"^help$", re.IGNORECASE))
def help_text(message: Message) -> str:
    return "Send any text and I echo it. Try the menu below."


@wecom.message("text")
def echo(message: Message) -> str:
    return f"echo: {message.content}"


@wecom.event("click", key="MENU_TODAY")
def today(message: Message) -> str:
    return "Today: stand-up at 10:00, release at 16:00."


@wecom.event("click", key="MENU_DOCS")
def docs(message: Message) -> NewsReply:
    return NewsReply([Article("flask_wecom", "How this app works", url="https://example.com/docs")])


@wecom.event("click", key=re.compile(r"^MENU_VOTE_(?P<choice>\w+)$"))
def vote(message: Message, choice: str) -> str:
    return f"Thanks, your vote for {choice.lower()} is counted."


@wecom.event("subscribe")
@wecom.event("enter_agent")
def welcome(message: Message) -> str:
    return f"Welcome, {message.from_user_name}! Type help to start."


@wecom.event("change_contact")
def contact_changed(message: Message) -> None:
    log.info("contact change: %s", message.change_type)  # ids are data: keep them out of logs


if app.config.get("WECOM_AIBOT_TOKEN"):
    bot = AIBot(app)

    @bot.message("text")
    def think_aloud(message: Message) -> Iterator[str]:
        """Stream the answer word by word, as an LLM would."""
        for word in f"You asked: {message.content}. Here is my answer.".split():
            time.sleep(0.2)
            yield word + " "
