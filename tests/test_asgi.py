"""The ASGI middleware in process: the same answers as WSGI, async handlers, streams, the loop.

Requests go through :class:`~flask_wecom.testing.WeComTestClient`, which calls an ASGI app
on an event loop of its own (the same kit users get). The uvicorn tests are in
test_asgi_uvicorn.py.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from typing import Any

import pytest

from flask_wecom.aibot import BotReceiver
from flask_wecom.asgi import WeComASGIMiddleware
from flask_wecom.crypto import WeComCrypto
from flask_wecom.messages import Message
from flask_wecom.middleware import WeComMiddleware
from flask_wecom.pipeline import Endpoint, Pipeline
from flask_wecom.receivers import Receiver
from flask_wecom.replies import StreamReply, TextReply
from flask_wecom.testing import CallbackSigner, SignedRequest, WeComTestClient, aibot_payload

TOKEN = "asgiToken0123456789abcdefABCDEF"
KEY = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"
CORP_ID = "wwasgi0123456789"


def echo_receiver() -> Receiver:
    receiver = Receiver()

    @receiver.message("text")
    def echo(message: Message) -> str:
        return f"echo: {message.content}"

    return receiver


def asgi_app(receiver: Receiver, **endpoint: Any) -> WeComASGIMiddleware:
    crypto = WeComCrypto(TOKEN, KEY, endpoint.pop("receive_id", CORP_ID))
    return WeComASGIMiddleware(
        None, Pipeline([Endpoint("/wecom", crypto, receiver=receiver, **endpoint)])
    )


def wsgi_app(receiver: Receiver) -> WeComMiddleware:
    def not_found(environ: Any, start_response: Any) -> list[bytes]:
        start_response("404 Not Found", [])
        return [b""]

    return WeComMiddleware(not_found, WeComCrypto(TOKEN, KEY, CORP_ID), receiver=receiver)


@pytest.fixture
def signer() -> CallbackSigner:
    return CallbackSigner(TOKEN, KEY, CORP_ID)


def drop(request: SignedRequest, name: str) -> SignedRequest:
    kept = [p for p in request.query_string.split("&") if not p.startswith(name + "=")]
    return replace(request, query_string="&".join(kept))


REQUESTS = [
    pytest.param(lambda s: s.text("hi"), id="valid"),
    pytest.param(lambda s: s.verification("1288432023552776189"), id="url-check"),
    pytest.param(lambda s: s.text("hi", signature="0" * 40), id="bad-signature"),
    pytest.param(lambda s: drop(s.text("hi"), "timestamp"), id="no-timestamp"),
    pytest.param(lambda s: s.text("hi", timestamp=1), id="stale"),
    pytest.param(lambda s: s.text("hi", receive_id="wwother"), id="other-receive-id"),
    pytest.param(lambda s: s.callback(b"<xml><unclosed></xml>"), id="plaintext-not-xml"),
    pytest.param(
        lambda s: replace(s.text("hi"), query_string=s.text("hi").query_string + "&nonce=1"),
        id="duplicate-parameter",
    ),
    pytest.param(lambda s: replace(s.text("hi"), body=b"<xml>"), id="malformed-envelope"),
    pytest.param(lambda s: replace(s.text("hi"), body=b"x" * 300_000), id="body-over-cap"),
    pytest.param(lambda s: replace(s.text("hi"), method="PUT"), id="put"),
]


@pytest.mark.parametrize("build", REQUESTS)
def test_every_answer_matches_the_wsgi_side(signer: CallbackSigner, build: Any) -> None:
    request = build(signer)
    asgi = WeComTestClient(asgi_app(echo_receiver()), signer).send(request)
    wsgi = WeComTestClient(wsgi_app(echo_receiver()), signer).send(request)
    assert asgi.status == wsgi.status
    if asgi.status == 200:
        assert asgi.reply == wsgi.reply
    else:
        assert asgi.body == wsgi.body


def test_async_handlers_run_on_the_loop_and_sync_ones_never(signer: CallbackSigner) -> None:
    receiver = Receiver()
    seen: dict[str, str] = {}

    @receiver.message("text", content="async")
    async def on_loop(message: Message) -> str:
        asyncio.get_running_loop()  # raises off the loop
        seen["async"] = threading.current_thread().name
        return "async ok"

    @receiver.message("text")
    def off_loop(message: Message) -> str:
        seen["sync"] = threading.current_thread().name
        return "sync ok"

    client = WeComTestClient(asgi_app(receiver), signer)
    assert client.send_text("async").reply == TextReply("async ok")
    assert client.send_text("other").reply == TextReply("sync ok")
    assert seen["async"] == "wecom-test-asgi"  # the event loop's thread
    assert seen["sync"].startswith("flask-wecom-asgi")


def test_an_async_generator_streams(signer: CallbackSigner) -> None:
    bot = BotReceiver()

    @bot.message("text")
    async def answer(message: Message) -> AsyncIterator[str]:
        for word in ["Hello", ", ", "world"]:
            await asyncio.sleep(0.05)
            yield word

    bot_signer = CallbackSigner(TOKEN, KEY, "", format="json")
    client = WeComTestClient(asgi_app(bot, receive_id=""), bot_signer)
    first = client.send(bot_signer.aibot_text("hi")).reply
    assert isinstance(first, StreamReply) and not first.finish
    seen = []
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        refresh = aibot_payload("stream", {"stream": {"id": first.id}}, msgid=f"r{len(seen)}")
        reply = client.send(bot_signer.callback(refresh)).reply
        assert isinstance(reply, StreamReply)
        seen.append(reply.content)
        if reply.finish:
            break
        time.sleep(0.02)
    assert seen[-1] == "Hello, world" and all("Hello, world".startswith(s) for s in seen)


def test_a_handler_past_the_deadline_keeps_running(signer: CallbackSigner) -> None:
    receiver = Receiver()
    finished = threading.Event()

    @receiver.message("text")
    async def slow(message: Message) -> str:
        await asyncio.sleep(0.5)
        finished.set()
        return "late"

    client = WeComTestClient(asgi_app(receiver, deadline=0.1), signer)
    started = time.monotonic()
    response = client.send_text("x")
    assert (response.status, response.body) == (200, b"")
    assert time.monotonic() - started < 0.4
    assert finished.wait(2)  # it ran to the end; without an API client the reply is logged


def test_a_retry_waits_without_blocking_the_loop(signer: CallbackSigner) -> None:
    receiver = Receiver()
    release = asyncio.Event()

    @receiver.message("text", content="slow")
    async def slow(message: Message) -> str:
        await release.wait()
        return "slow done"

    @receiver.message("text")
    async def quick(message: Message) -> str:
        release.set()  # served while the retry waits: the loop is free
        return "quick"

    client = WeComTestClient(asgi_app(receiver, deadline=0), signer)
    first = signer.text("slow")
    results: dict[str, Any] = {}
    threads = [
        threading.Thread(target=lambda: results.update(first=client.send(first))),
        threading.Thread(target=lambda: results.update(retry=client.send(signer.resend(first)))),
    ]
    for thread in threads:
        thread.start()
        time.sleep(0.1)
    assert client.send_text("go").reply == TextReply("quick")
    for thread in threads:
        thread.join(5)
    assert results["first"].reply == TextReply("slow done")
    assert results["retry"].reply == TextReply("slow done")  # it waited, then replayed


class Chunks:
    """A receive() that hands out a body in chunks and counts what was read."""

    def __init__(self, chunk: bytes, count: int) -> None:
        self.chunk, self.count, self.read = chunk, count, 0

    async def __call__(self) -> dict[str, Any]:
        self.read += 1
        return {"type": "http.request", "body": self.chunk, "more_body": self.read < self.count}


def run(app: WeComASGIMiddleware, scope: dict[str, Any], receive: Any) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return sent


def http_scope(request: SignedRequest, headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    return {
        "type": "http",
        "method": "POST",
        "path": "/wecom",
        "query_string": request.query_string.encode(),
        "headers": headers,
    }


def test_a_body_over_the_cap_is_refused_without_reading_the_rest(signer: CallbackSigner) -> None:
    app = asgi_app(echo_receiver())
    receive = Chunks(b"x" * 64 * 1024, 100)  # 6.4 MB on offer, no Content-Length
    sent = run(app, http_scope(signer.text("hi"), []), receive)
    assert sent[0]["status"] == 413
    assert receive.read == 5  # 4 x 64 KiB fit the 256 KiB cap; the fifth passes it


def test_a_client_that_disconnects_gets_no_answer(signer: CallbackSigner) -> None:
    async def gone() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    assert run(asgi_app(echo_receiver()), http_scope(signer.text("hi"), []), gone) == []


def test_other_paths_and_lifespan_pass_through() -> None:
    calls: list[str] = []

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        calls.append(scope["type"])

    crypto = WeComCrypto(TOKEN, KEY, CORP_ID)
    app = WeComASGIMiddleware(inner, Pipeline([Endpoint("/wecom", crypto, receiver=Receiver())]))

    async def nothing() -> dict[str, Any]:
        return {}

    async def ignore(message: Any) -> None:
        return None

    asyncio.run(app({"type": "lifespan"}, nothing, ignore))
    asyncio.run(app({"type": "http", "path": "/other", "method": "GET"}, nothing, ignore))
    asyncio.run(app({"type": "websocket", "path": "/wecom"}, nothing, ignore))
    assert calls == ["lifespan", "http", "websocket"]


def test_a_sync_generator_streams_too(signer: CallbackSigner) -> None:
    bot = BotReceiver()

    @bot.message("text")
    def answer(message: Message) -> Iterator[str]:
        yield from ["a", "b"]

    bot_signer = CallbackSigner(TOKEN, KEY, "", format="json")
    client = WeComTestClient(asgi_app(bot, receive_id=""), bot_signer)
    first = client.send(bot_signer.aibot_text("hi")).reply
    assert isinstance(first, StreamReply)
    time.sleep(0.2)
    refresh = aibot_payload("stream", {"stream": {"id": first.id}}, msgid="r")
    assert client.send(bot_signer.callback(refresh)).reply == StreamReply(first.id, "ab", True)
