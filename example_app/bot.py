"""Framework-free handlers for the plain-WSGI and Django examples (wsgi_app.py, django_site.py).

The same decorators as the Flask extension, on a :class:`~flask_wecom.receivers.Receiver`.
"""

from __future__ import annotations

import re
import time

from flask_wecom.messages import Message
from flask_wecom.receivers import Receiver

receiver = Receiver()


@receiver.message("text", content=re.compile(r"^slow (?P<seconds>[0-9.]+)$"))
def slow(message: Message, seconds: str) -> str:
    """Miss WeCom's deadline on purpose: the answer then goes by message/send."""
    time.sleep(float(seconds))
    return f"done after {seconds} s"


@receiver.message("text")
def echo(message: Message) -> str:
    return f"echo: {message.content}"


@receiver.event("click", key="MENU_TODAY")
def today(message: Message) -> str:
    return "Today: stand-up at 10:00, release at 16:00."
