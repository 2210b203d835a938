"""An AI-bot stream across gunicorn workers, checked against any store URL.

Used by tests/test_aibot.py (one Redis) and tests/test_retry_storm.py (Sentinel, Cluster).
"""

from __future__ import annotations

import time

import requests

from flask_wecom.replies import StreamReply
from flask_wecom.testing import CallbackSigner, SignedRequest, aibot_payload
from harness.web_servers import GunicornServer
from tests.support.vectors import KEY, TOKEN

#: The bot app's settings (tests/apps/bot_app.py).
BOT = {"WECOM_AIBOT_TOKEN": TOKEN, "WECOM_AIBOT_ENCODING_AES_KEY": KEY}


def bot_signer() -> CallbackSigner:
    """Signs AI-bot callbacks for :data:`BOT`."""
    return CallbackSigner(TOKEN, KEY, "", format="json")


def refresh(stream_id: str) -> str:
    """A stream refresh callback (流式消息刷新) for ``stream_id``."""
    return aibot_payload("stream", {"stream": {"id": stream_id}}, msgid=f"r-{time.monotonic_ns()}")


def post(server: GunicornServer, request: SignedRequest) -> requests.Response:
    """POST to the bot on a fresh connection, so refreshes spread over the workers."""
    return requests.post(
        server.url(request.url("/aibot")),
        data=request.body,
        timeout=10,
        headers={"Connection": "close"},
    )


def check_stream_across_workers(store_url: str) -> None:
    """Start a stream on one worker of two; refresh it until finished; both workers answer."""
    signer = bot_signer()
    env = {**BOT, "WECOM_REDIS_URL": store_url}
    with GunicornServer("tests.apps.bot_app:app", env=env, workers=2) as server:
        first = signer.aibot_text("Redis")
        response = post(server, first)
        opened = signer.open_reply(response.content, first)
        assert isinstance(opened, StreamReply) and not opened.finish
        workers = {response.headers["X-Worker-Pid"]}
        refresh_workers: set[str] = set()
        deadline = time.monotonic() + 10
        # Until the stream is finished and both workers have answered a refresh (a finished
        # stream keeps answering its whole content), so the check does not depend on how
        # gunicorn happened to spread a short stream's few refreshes.
        while time.monotonic() < deadline:
            poll = signer.callback(refresh(opened.id))
            answer = post(server, poll)
            refresh_workers.add(answer.headers["X-Worker-Pid"])
            reply = signer.open_reply(answer.content, poll)
            assert isinstance(reply, StreamReply)
            if reply.finish and len(workers | refresh_workers) == 2:
                break
            time.sleep(0.05)
    assert reply.finish and reply.content == "Thinking about Redis."
    assert len(workers | refresh_workers) == 2, "every refresh landed on one worker"
