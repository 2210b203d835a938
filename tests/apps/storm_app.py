"""A Flask app for the retry tests: records every handler execution in Redis.

Each execution INCRs ``executions:<MsgId>`` and answers with a fresh random
token, so two executions of one callback would give two different replies.
Content ``slow:<seconds>`` sleeps that long first.
"""

from __future__ import annotations

import os
import secrets
import time

import redis
from flask import Flask

from flask_wecom import WeCom
from flask_wecom.messages import Message

app = Flask(__name__)
app.config.update({k: v for k, v in os.environ.items() if k.startswith("WECOM_")})
wecom = WeCom(app)
counter = redis.Redis.from_url(os.environ["STORM_COUNTER_URL"])


@wecom.message("text")
def record(message: Message) -> str:
    counter.incr(f"executions:{message.msg_id}")
    content = message.content or ""
    if content.startswith("slow:"):
        time.sleep(float(content.split(":")[1]))
    return f"{message.content}:{secrets.token_hex(8)}"
