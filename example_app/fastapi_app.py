"""The example on FastAPI under uvicorn: a streaming AI bot, an echo and a menu click.

Run (after ``pip install 'flask-wecom[asgi-example]'`` and the ``WECOM_*`` settings)::

    uvicorn example_app.fastapi_app:app --host 127.0.0.1 --port 8000 --workers 2

The self-built app answers at ``/wecom`` (``WECOM_TOKEN``, ``WECOM_ENCODING_AES_KEY``,
``WECOM_CORP_ID``) and, with ``WECOM_AIBOT_TOKEN`` and ``WECOM_AIBOT_ENCODING_AES_KEY`` set,
the AI bot at ``/aibot``; ``WECOM_REDIS_URL`` shares dedup and streams between workers.
Everything else is FastAPI's.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator

from fastapi import FastAPI

from flask_wecom.aibot import BotReceiver
from flask_wecom.asgi import WeComASGIMiddleware
from flask_wecom.messages import Message
from flask_wecom.receivers import Receiver

wecom = Receiver()
bot = BotReceiver()


@wecom.message("text")
async def echo(message: Message) -> str:
    return f"echo: {message.content}"


@wecom.event("click", key="MENU_TODAY")
def today(message: Message) -> str:  # a plain function runs on a thread, never on the loop
    return "Today: stand-up at 10:00, release at 16:00."


async def fake_llm(prompt: str) -> AsyncIterator[str]:
    """Stands in for a model's token stream."""
    for word in f"You asked: {prompt}. Here is my answer.".split():
        await asyncio.sleep(0.1)
        yield word + " "


@bot.message("text")
async def think_aloud(message: Message) -> AsyncIterator[str]:
    """Stream the answer as the model writes it (流式消息)."""
    async for chunk in fake_llm(message.content or ""):
        yield chunk


api = FastAPI()


@api.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


receivers = [wecom, bot] if os.environ.get("WECOM_AIBOT_TOKEN") else [wecom]
app = WeComASGIMiddleware.from_config(api, *receivers)
