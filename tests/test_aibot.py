"""AI bots (智能机器人): vectors, stream replies and refreshes, welcome, feedback, response_url."""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import replace
from typing import Any

import pytest
from flask import Flask

from flask_wecom import AIBot, StreamReply, TemplateCardReply, WelcomeTextReply
from flask_wecom.errors import APIError
from flask_wecom.messages import Message
from flask_wecom.replies import MAX_STREAM_BYTES, StreamImage
from flask_wecom.stores import MemoryStore
from flask_wecom.streams import StreamStore
from flask_wecom.testing import WeComTestClient, aibot_payload
from tests.support.bot_streams import BOT, bot_signer, check_stream_across_workers, refresh
from tests.support.vectors import load


def make_bot() -> tuple[AIBot, WeComTestClient]:
    app = Flask(__name__)
    app.config.update(BOT)
    bot = AIBot(app)
    return bot, WeComTestClient(app, bot_signer(), "/aibot")


def event(eventtype: str, **details: Any) -> str:
    body = {"event": {"eventtype": eventtype, **details}}
    return aibot_payload("event", body, msgid=f"e-{time.monotonic_ns()}", create_time=1)


@pytest.mark.parametrize("vector", [pytest.param(v, id=v["kind"]) for v in load("aibot")])
def test_aibot_vectors_through_the_endpoint(vector: dict[str, Any]) -> None:
    app = Flask(__name__)
    app.config.update(
        WECOM_AIBOT_TOKEN=vector["token"],
        WECOM_AIBOT_ENCODING_AES_KEY=vector["encoding_aes_key"],
        WECOM_TOLERANCE=10**10,  # the vectors are old: no replay window, so no dedup either
        WECOM_DEDUP=False,
    )
    bot = AIBot(app)
    bot.message("text")(lambda m: f"got {m.content}")
    query = {k: vector[k] for k in ("msg_signature", "timestamp", "nonce")}
    client = app.test_client()
    if vector["kind"] == "verify_url":
        response = client.get("/aibot", query_string={**query, "echostr": vector["echostr"]})
        assert response.get_data(as_text=True) == vector["expected_plaintext"]
        return
    response = client.post("/aibot", query_string=query, data=vector["post_data"])
    assert response.status_code == 200
    envelope = response.get_json()
    assert envelope["nonce"] == vector["nonce"]  # AI-bot replies reuse the callback's nonce
    assert isinstance(envelope["timestamp"], int)


def words(message: Message) -> Iterator[str]:
    yield f"got {message.content}"


async def async_words(message: Message) -> AsyncIterator[str]:
    yield f"got {message.content}"


@pytest.mark.parametrize(
    ("handler", "status"),
    [
        pytest.param(words, 200, id="generator-function"),
        pytest.param(async_words, 200, id="async-generator-function"),
        pytest.param(lambda message: words(message), 503, id="function-returning-a-generator"),
    ],
)
def test_a_stream_handler_is_called_without_a_handler_thread(
    handler: Callable[[Message], Any], status: int
) -> None:
    """Calling a generator function runs none of its body, so it cannot miss the deadline:
    the stream starts on the request thread even when every handler thread is busy. Any
    other handler needs a handler thread (busy: 503, WeCom retries)."""
    app = Flask(__name__)
    app.config.update(BOT, WECOM_THREADS=1)
    bot = AIBot(app)
    bot.message("text")(handler)
    client = WeComTestClient(app, bot_signer(), "/aibot")
    release = threading.Event()
    app.wsgi_app.pipeline.runner.defer(release.wait)  # type: ignore[attr-defined]
    try:
        response = client.send(client.signer.aibot_text("hi"))
    finally:
        release.set()
    assert response.status == status
    assert isinstance(response.reply, StreamReply) is (status == 200)


def test_a_streamed_conversation() -> None:
    bot, client = make_bot()

    @bot.message("text")
    def answer(message: Message) -> Iterator[str | StreamImage]:
        for word in ["Hello", ", ", "world"]:
            time.sleep(0.1)
            yield word
        yield StreamImage.from_bytes(b"\x89PNG fake image bytes")

    first = client.send(client.signer.aibot_text("hi"))
    assert isinstance(first.reply, StreamReply)
    assert (first.reply.content, first.reply.finish) == ("", False)
    stream_id = first.reply.id

    seen: list[str] = []
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        reply = client.send(client.signer.callback(refresh(stream_id))).reply
        assert isinstance(reply, StreamReply) and reply.id == stream_id
        seen.append(reply.content)
        if reply.finish:
            break
        time.sleep(0.03)
    assert reply.finish and reply.content == "Hello, world"
    assert len(reply.msg_items) == 1
    assert all("Hello, world".startswith(content) for content in seen)  # cumulative, not deltas
    assert len(set(seen)) >= 3


def test_unknown_stream_id_finishes_empty() -> None:
    _, client = make_bot()
    reply = client.send(client.signer.callback(refresh("no-such-stream"))).reply
    assert reply == StreamReply("no-such-stream", "", finish=True)


def test_str_answer_is_a_finished_stream_and_enter_chat_gets_a_welcome() -> None:
    bot, client = make_bot()
    bot.message("text")(lambda m: f"echo {m.content}")
    bot.event("enter_chat")(lambda m: "Welcome! Ask me anything.")
    reply = client.send(client.signer.aibot_text("hey")).reply
    assert isinstance(reply, StreamReply) and (reply.content, reply.finish) == ("echo hey", True)
    welcome = client.send(client.signer.callback(event("enter_chat"))).reply
    assert welcome == WelcomeTextReply("Welcome! Ask me anything.")


def test_feedback_event_refuses_a_reply(caplog: pytest.LogCaptureFixture) -> None:
    bot, client = make_bot()
    bot.event("feedback_event")(lambda m: "thanks for the feedback")
    response = client.send(
        client.signer.callback(event("feedback_event", feedback={"id": "f", "type": 1}))
    )
    assert (response.status, response.body) == (200, b"")
    assert "reply refused" in caplog.text


def test_stream_content_keeps_the_utf8_tail() -> None:
    streams = StreamStore(MemoryStore())
    stream_id = streams.start()
    streams.run(stream_id, ["前" * 5000, "x" * 6000, "后" * 2000])  # 15000 + 6000 + 6000 bytes
    reply = streams.snapshot(stream_id)
    assert reply.finish
    assert len(reply.content.encode()) <= MAX_STREAM_BYTES
    assert reply.content.endswith("x" * 6000 + "后" * 2000)
    assert reply.content.encode().decode() == reply.content  # cut on a character boundary


def test_a_failing_stream_finishes_with_what_it_has() -> None:
    streams = StreamStore(MemoryStore())
    stream_id = streams.start()

    def chunks() -> Iterator[str]:
        yield "partial"
        raise ConnectionError("model went away")

    streams.run(stream_id, chunks())
    assert streams.snapshot(stream_id) == StreamReply(stream_id, "partial", finish=True)


def test_a_stream_past_six_minutes_is_finished() -> None:
    now = [0.0]
    streams = StreamStore(MemoryStore(), clock=lambda: now[0])
    stream_id = streams.start()

    def chunks() -> Iterator[str]:
        yield "a"
        now[0] = 361.0
        yield "b"
        yield "never"

    streams.run(stream_id, chunks())
    assert streams.snapshot(stream_id) == StreamReply(stream_id, "ab", finish=True)


def test_respond_through_response_url(fake_wecom_api: Any) -> None:
    bot, client = make_bot()
    url = f"{fake_wecom_api.url}/cgi-bin/aibot/response?response_code=RC1"
    card_url = f"{fake_wecom_api.url}/cgi-bin/aibot/response?response_code=RC2"
    message_payload = aibot_payload(
        "text", {"text": {"content": "q"}}, msgid="m-rsp", response_url=url
    )
    seen: list[Message] = []
    bot.message("text")(lambda m: seen.append(m) and None)
    client.send(client.signer.callback(message_payload))
    bot.respond(seen[0], "**done**")
    with pytest.raises(APIError) as used:
        bot.respond(seen[0], "again")  # a response_url works once
    assert used.value.errcode == 40001
    card = TemplateCardReply({"card_type": "text_notice", "main_title": {"title": "t"}})
    bot.respond(replace(seen[0], response_url=card_url), card)
    bodies = fake_wecom_api.state()["aibot_responses"]
    assert bodies[0] == {"msgtype": "markdown", "markdown": {"content": "**done**"}}
    assert bodies[1]["msgtype"] == "template_card"


# -- under real gunicorn with Redis --


def test_stream_refreshes_across_workers(redis_url: str) -> None:
    check_stream_across_workers(redis_url)


def test_async_handlers_run_unchanged_under_wsgi() -> None:
    """A handler written for an ASGI server (async def, async generator) works on Flask too."""
    import asyncio

    bot, client = make_bot()

    @bot.message("text", content="stream")
    async def streamed(message: Message) -> AsyncIterator[str]:
        for word in ["async", " words"]:
            await asyncio.sleep(0.01)
            yield word

    @bot.message("text")
    async def whole(message: Message) -> str:
        await asyncio.sleep(0)
        return f"async {message.content}"

    reply = client.send(client.signer.aibot_text("hey")).reply
    assert isinstance(reply, StreamReply) and (reply.content, reply.finish) == ("async hey", True)
    first = client.send(client.signer.aibot_text("stream")).reply
    assert isinstance(first, StreamReply) and not first.finish
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        latest = client.send(client.signer.callback(refresh(first.id))).reply
        assert isinstance(latest, StreamReply)
        if latest.finish:
            break
        time.sleep(0.02)
    assert latest == StreamReply(first.id, "async words", finish=True)
