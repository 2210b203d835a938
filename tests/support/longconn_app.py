"""A Flask app with an AI bot, run over the long connection by tests/test_longconn_lease.py.

Every handler start and finish is appended to the file ``LONGCONN_TEST_LOG`` names, with the
process id and the msgid, so a test can count how often each message really ran. A text
``slow N`` takes N seconds.
"""

from __future__ import annotations

import os
import time

from flask import Flask

from flask_wecom import AIBot
from flask_wecom.aibot import BotReceiver
from flask_wecom.messages import Message

app = Flask(__name__)
app.config.update({k: v for k, v in os.environ.items() if k.startswith("WECOM_")})
bot = AIBot(app)


def note(step: str, message: Message) -> None:
    """Append one line (one write, so lines of several processes never mix)."""
    with open(os.environ["LONGCONN_TEST_LOG"], "a") as log:
        log.write(f"{step} {os.getpid()} {message.msg_id}\n")


@bot.message("text")
def answer(message: Message) -> str:
    note("start", message)
    content = str(message.content)
    if content.startswith("slow "):
        time.sleep(float(content.split()[1]))
    note("done", message)
    return f"{content} from {os.getpid()}"


#: The same handler on a bare receiver (``--app tests.support.longconn_app:plain``).
plain = BotReceiver()
plain.message("text")(answer)
