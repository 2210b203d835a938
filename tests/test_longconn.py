"""The AI bot's long connection (flask_wecom.longconn) against the fake server, in one process.

Every test runs the real transport on its own thread against FakeLongConnServer on loopback;
intervals are short so the protocol's timing rules play out in well under a second each.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import random
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from flask import Flask, current_app
from websockets.sync.client import connect

from flask_wecom import AIBot, WeCom, aio
from flask_wecom.aibot import BotReceiver
from flask_wecom.aio import HandlerPool
from flask_wecom.errors import ConfigError
from flask_wecom.longconn import (
    AuthFailed,
    Backoff,
    Displaced,
    LongConnection,
    QuotaExceeded,
)
from flask_wecom.messages import Message, parse_message
from flask_wecom.receivers import Call, current_message, handling
from flask_wecom.replies import (
    BotUpdateTemplateCardReply,
    StreamReply,
    TemplateCardReply,
    WelcomeTextReply,
    parse_reply,
)
from flask_wecom.runner import Runner
from flask_wecom.stores import MemoryStore, RedisStore
from flask_wecom.testing import (
    CallbackSigner,
    WeComTestClient,
    aibot_payload,
    generate_encoding_aes_key,
    generate_token,
)
from flask_wecom.testing_longconn import FakeLongConnServer, encrypt_media

BOT, SECRET = "aibTESTBOT", "TEST_LONGCONN_SECRET"
FAST = Backoff(base=0.05, cap=0.2)
CARD = {"card_type": "text_notice", "main_title": {"title": "Done"}, "task_id": "TASK1"}
CLICK = {"card_type": "button_interaction", "event_key": "OK", "task_id": "TASK1"}
KEY = generate_encoding_aes_key()


@pytest.fixture
def server() -> Iterator[FakeLongConnServer]:
    with FakeLongConnServer(BOT, SECRET, displaced_close_delay=0.2) as fake:
        yield fake


@contextmanager
def running(
    bot: BotReceiver, server: FakeLongConnServer, **options: Any
) -> Iterator[LongConnection]:
    """The transport, subscribed, on a thread of its own; stopped on exit."""
    options.setdefault("reconnect", FAST)
    conn = LongConnection(bot, BOT, options.pop("secret", SECRET), url=server.url, **options)
    conn.start()
    try:
        assert conn.wait_ready(5)
        yield conn
    finally:
        conn.stop(10)


def echo_bot() -> BotReceiver:
    bot = BotReceiver()

    @bot.message("text")
    def echo(message: Message) -> str:
        return f"echo: {message.content}"

    return bot


# --------------------------------------------------------------------------- handlers


def sync_text(message: Message) -> str:
    return f"sync: {message.content}"


async def async_text(message: Message) -> str:
    await asyncio.sleep(0)
    return f"async: {current_message.content}"


def sync_stream(message: Message) -> Iterator[str]:
    yield "one "
    yield "two "
    yield str(current_message.content)


async def async_stream(message: Message) -> AsyncIterator[str]:
    for word in ("one ", "two ", str(message.content)):
        await asyncio.sleep(0.01)
        yield word


@pytest.mark.parametrize(
    ("handler", "expected"),
    [
        pytest.param(sync_text, "sync: hi", id="sync-str"),
        pytest.param(async_text, "async: hi", id="async-str"),
        pytest.param(sync_stream, "one two hi", id="sync-generator"),
        pytest.param(async_stream, "one two hi", id="async-generator"),
    ],
)
def test_a_handler_answers_with_a_finished_stream(
    server: FakeLongConnServer, handler: Callable[..., Any], expected: str
) -> None:
    bot = BotReceiver()
    bot.message("text")(handler)
    with running(bot, server):
        req_id = server.push_message("hi")
        assert server.wait_for(lambda: server.stream_text(req_id)) == expected
        assert all(s.errcode == 0 for s in server.sent(req_id=req_id))


def test_sync_handlers_run_off_the_event_loop(server: FakeLongConnServer) -> None:
    bot = BotReceiver()
    seen: list[bool] = []

    @bot.message("text")
    def blocking(message: Message) -> str:
        try:
            asyncio.get_running_loop()
            seen.append(True)
        except RuntimeError:
            seen.append(False)
        time.sleep(0.3)  # blocks a pool thread, not the loop: both messages overlap
        return "done"

    with running(bot, server):
        started = time.monotonic()
        first, second = server.push_message("a"), server.push_message("b")
        server.wait_for(lambda: server.stream_text(first) and server.stream_text(second))
        assert time.monotonic() - started < 0.55
    assert seen == [False, False]


def test_welcome_and_card_update_use_their_own_commands(server: FakeLongConnServer) -> None:
    bot = BotReceiver()

    @bot.event("enter_chat")
    def welcome(message: Message) -> str:
        return "Hello!"

    @bot.event("template_card_event")
    def clicked(message: Message) -> BotUpdateTemplateCardReply:
        return BotUpdateTemplateCardReply(CARD)

    @bot.message("text")
    def card(message: Message) -> TemplateCardReply:
        return TemplateCardReply(CARD)

    with running(bot, server):
        entered = server.push_event("enter_chat")
        click = server.push_event(
            "template_card_event", details={"event_key": "OK", "task_id": "TASK1"}
        )
        text = server.push_message("card please")
        server.wait_for(lambda: len(server.sent()) == 3)
    commands = {s.req_id: (s.cmd, s.errcode) for s in server.sent()}
    assert commands == {
        entered: ("aibot_respond_welcome_msg", 0),
        click: ("aibot_respond_update_msg", 0),
        text: ("aibot_respond_msg", 0),
    }
    assert server.sent(req_id=entered)[0].body == {"msgtype": "text", "text": {"content": "Hello!"}}


def test_a_welcome_slower_than_the_window_is_dropped_and_logged(
    server: FakeLongConnServer, caplog: pytest.LogCaptureFixture
) -> None:
    bot = BotReceiver()

    @bot.event("enter_chat")
    async def slow(message: Message) -> str:
        await asyncio.sleep(1)
        return "too late"

    with running(bot, server, event_deadline=0.2):
        server.push_event("enter_chat")
        server.wait_for(lambda: "took over WeCom's 5 s" in caplog.text)
    assert server.sent() == []


def test_duplicate_deliveries_run_the_handler_once(server: FakeLongConnServer) -> None:
    bot = BotReceiver()
    calls: list[str] = []

    @bot.message("text")
    def count(message: Message) -> str:
        calls.append(str(message.msg_id))
        return "once"

    with running(bot, server) as conn:
        first = server.push_message("x", msgid="MSG_DUP")
        server.wait_for(lambda: server.stream_text(first))
        server.push_message("x", msgid="MSG_DUP")
        server.wait_for(lambda: conn.stats["duplicates"] == 1)
    assert calls == ["MSG_DUP"]
    assert len(server.sent()) == 1


def test_bad_credentials_raise_after_a_few_tries_and_stop(server: FakeLongConnServer) -> None:
    conn = LongConnection(
        echo_bot(), BOT, "wrong", url=server.url, reconnect=FAST, max_auth_failures=3
    )
    conn.start()
    with pytest.raises(AuthFailed, match="853000"):
        conn.wait(5)
    assert server.refused_subscribes == 3
    time.sleep(0.3)
    assert server.refused_subscribes == 3  # no retry storm afterwards
    assert server.open_connections() == 0  # the client closed the unauthenticated sockets


def test_a_server_that_stops_acking_pings_is_left_for_a_new_connection(
    server: FakeLongConnServer,
) -> None:
    with running(echo_bot(), server, ping_interval=0.1) as conn:
        server.ack_pings = False
        server.wait_for(lambda: server.subscribes == 2 or None, timeout=3)
        server.ack_pings = True
        assert conn.wait_ready(3)
        req_id = server.push_message("after")
        assert server.wait_for(lambda: server.stream_text(req_id)) == "echo: after"
        assert conn.stats["drops"] >= 1


def gated_stream(first: str, then: str) -> tuple[BotReceiver, threading.Event]:
    """A bot streaming ``first``, then ``then`` once the returned event is set."""
    bot = BotReceiver()
    gate = threading.Event()

    @bot.message("text")
    def gated(message: Message) -> Iterator[str]:
        yield first
        gate.wait(5)
        yield then

    return bot, gate


def test_a_stream_survives_a_dropped_connection(server: FakeLongConnServer) -> None:
    bot, release = gated_stream("before ", "after")
    with running(bot, server):
        req_id = server.push_message("go")
        server.wait_for(lambda: server.stream(req_id))
        server.drop()
        server.wait_for(lambda: server.subscribes == 2)
        release.set()
        assert server.wait_for(lambda: server.stream_text(req_id)) == "before after"


def test_one_frame_in_flight_per_req_id() -> None:
    with FakeLongConnServer(BOT, SECRET, ack_delay=0.1) as server:
        bot = BotReceiver()

        @bot.message("text")
        async def fast(message: Message) -> AsyncIterator[str]:
            for i in range(30):
                await asyncio.sleep(0.01)
                yield f"{i} "

        with running(bot, server):
            req_id = server.push_message("go")
            text = server.wait_for(lambda: server.stream_text(req_id), timeout=10)
        frames = server.sent(req_id=req_id)
    assert text == "".join(f"{i} " for i in range(30))
    assert 2 <= len(frames) < 30  # intermediate frames are merged while one awaits its ack
    gaps = [b.at - a.at for a, b in itertools.pairwise(frames)]
    assert min(gaps) >= 0.09


def pausing_stream(first: str, pause: float, then: str) -> BotReceiver:
    """A bot whose async generator yields ``first``, sleeps ``pause`` s, yields ``then``."""
    bot = BotReceiver()

    @bot.message("text")
    async def pausing(message: Message) -> AsyncIterator[str]:
        yield first
        await asyncio.sleep(pause)
        yield then

    return bot


def test_a_stream_is_finished_before_its_limit_and_the_rest_pushed(
    server: FakeLongConnServer,
) -> None:
    with running(pausing_stream("start ", 0.6, "end"), server, stream_limit=0.3):
        req_id = server.push_message("go", userid="lisi")
        pushed = server.wait_for(lambda: server.sent("aibot_send_msg"))
        assert server.stream_text(req_id) == "start "
    assert pushed[0].body == {
        "chatid": "lisi",
        "msgtype": "markdown",
        "markdown": {"content": "end"},
    }


def test_an_expired_stream_moves_to_a_proactive_message() -> None:
    now = [0.0]
    with FakeLongConnServer(BOT, SECRET, clock=lambda: now[0]) as server:
        bot, step = gated_stream("start ", "end")
        with running(bot, server):
            req_id = server.push_message("go")
            server.wait_for(lambda: server.stream(req_id))
            now[0] += 361  # past the 6 minutes: the next frame gets 846608
            step.set()
            pushed = server.wait_for(lambda: server.sent("aibot_send_msg"))
        assert [s.errcode for s in server.sent(req_id=req_id)] == [0, 846608]
        assert pushed[0].body["markdown"] == {"content": "end"}


def test_a_quiet_stream_is_refreshed(server: FakeLongConnServer) -> None:
    with running(pausing_stream("thinking", 0.5, "."), server, stream_refresh=0.1):
        req_id = server.push_message("go")
        server.wait_for(lambda: server.stream_text(req_id))
    contents = [s.body["stream"]["content"] for s in server.sent(req_id=req_id)]
    assert contents.count("thinking") >= 3
    assert contents[-1] == "thinking."


def test_the_quota_is_a_typed_error_never_a_silent_drop(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with FakeLongConnServer(BOT, SECRET, quota_per_minute=2) as server:
        with running(echo_bot(), server) as conn:
            for i in range(3):
                server.push_message(f"m{i}")
            server.wait_for(lambda: conn.stats["quota"] == 1)
            with pytest.raises(QuotaExceeded):
                conn.call_blocking(conn.send_message("zhangsan", "more"))
        assert "longconn_quota" in caplog.text


def test_a_displaced_holder_stops_without_reconnecting(
    server: FakeLongConnServer, caplog: pytest.LogCaptureFixture
) -> None:
    conn = LongConnection(echo_bot(), BOT, SECRET, url=server.url, reconnect=FAST).start()
    assert conn.wait_ready(5)
    with connect(server.url) as other:
        other.send(
            '{"cmd":"aibot_subscribe","headers":{"req_id":"x"},"body":'
            f'{{"bot_id":"{BOT}","secret":"{SECRET}"}}}}'
        )
        assert '"errcode": 0' in str(other.recv(2))
        with pytest.raises(Displaced):
            conn.wait(5)
        time.sleep(0.3)
        assert server.subscribes == 2 and server.kicks == 1
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "disconnected_event" in errors[0].getMessage()


def test_inbound_media_is_downloaded_and_decrypted(server: FakeLongConnServer) -> None:
    bot = BotReceiver()
    data = bytes(range(256)) * 40
    got: list[tuple[bytes, str]] = []
    conn_box: list[LongConnection] = []

    @bot.message("file")
    async def save(message: Message) -> str:
        file = message.raw["file"]
        media = await conn_box[0].download_media(file["url"], file["aeskey"])
        got.append((media.data, media.filename))
        return "saved"

    with running(bot, server) as conn:
        conn_box.append(conn)
        req_id = server.push_message(msgtype="file", media=data, filename="report.pdf")
        server.wait_for(lambda: server.stream_text(req_id))
    assert got == [(data, "report.pdf")]


def test_upload_then_push_the_file(server: FakeLongConnServer) -> None:
    data = b"x" * (512 * 1024 + 10)  # two chunks
    with running(echo_bot(), server) as conn:
        hello = server.push_message("hi")  # aibot_send_msg needs a chat that wrote first
        server.wait_for(lambda: server.stream_text(hello))
        media_id = conn.call_blocking(conn.upload_media(data, "big.bin"))
        conn.call_blocking(
            conn.send_message("zhangsan", {"msgtype": "file", "file": {"media_id": media_id}})
        )
    assert server.uploads[media_id] == ("file", "big.bin", data)
    assert server.sent("aibot_send_msg")[0].errcode == 0


def test_encrypt_media_round_trips_through_the_crypto_module() -> None:
    from flask_wecom.crypto import decrypt_media

    key = "A" * 43
    for size in (0, 1, 31, 32, 33):
        assert decrypt_media(encrypt_media(b"z" * size, key), key) == b"z" * size


def one_bot_app() -> tuple[Flask, AIBot]:
    """A Flask app whose AI bot answers text, streams, welcomes and card clicks."""
    app = Flask(__name__)
    app.config.update(WECOM_AIBOT_TOKEN=generate_token(), WECOM_AIBOT_ENCODING_AES_KEY=KEY)
    bot = AIBot(app)

    @bot.message("text", content="stream")
    def streamed(message: Message) -> Iterator[str]:
        yield from ("a", "b", "c")

    @bot.message("text")  # sync: the Flask webhook does not await ``async def`` handlers
    def text(message: Message) -> str:
        return f"echo {message.content} in {current_app.name}"

    @bot.event("enter_chat")
    def welcome(message: Message) -> str:
        return "Welcome!"

    @bot.event("template_card_event")
    def clicked(message: Message) -> BotUpdateTemplateCardReply:
        return BotUpdateTemplateCardReply(CARD)

    return app, bot


def webhook_answers(app: Flask) -> list[Any]:
    """Text, stream (polled to its end), welcome and card click through the webhook."""
    client = WeComTestClient(
        app, CallbackSigner(app.config["WECOM_AIBOT_TOKEN"], KEY, "", format="json"), "/aibot"
    )
    text = client.send(client.signer.aibot_text("hi")).reply
    stream = client.send(client.signer.aibot_text("stream")).reply
    assert isinstance(text, StreamReply) and isinstance(stream, StreamReply)
    refresh = aibot_payload("stream", {"stream": {"id": stream.id}}, msgid="refresh")
    while not stream.finish:
        stream = client.send(client.signer.callback(refresh)).reply
        time.sleep(0.01)
    events = [
        aibot_payload("event", {"event": {"eventtype": "enter_chat"}}, msgid="e1"),
        aibot_payload(
            "event",
            {"event": {"eventtype": "template_card_event", "template_card_event": CLICK}},
            msgid="e2",
        ),
    ]
    welcome, update = (client.send(client.signer.callback(e)).reply for e in events)
    return [text.content, stream.content, welcome, update]


def longconn_answers(app: Flask, bot: AIBot, server: FakeLongConnServer) -> list[Any]:
    """The same four over the long connection."""
    with running(bot, server, scope=app.app_context):
        text, stream = server.push_message("hi"), server.push_message("stream")
        entered = server.push_event("enter_chat")
        click = server.push_event("template_card_event", details=CLICK)
        server.wait_for(lambda: server.stream_text(text) and server.stream_text(stream))
        server.wait_for(lambda: server.sent(req_id=entered) and server.sent(req_id=click))
    welcome, update = (server.sent(req_id=r)[0] for r in (entered, click))
    return [
        server.stream_text(text),
        server.stream_text(stream),
        parse_reply(json.dumps(welcome.body)),
        parse_reply(json.dumps(update.body)),
    ]


def test_one_bot_answers_alike_over_the_webhook_and_the_long_connection(
    server: FakeLongConnServer,
) -> None:
    app, bot = one_bot_app()
    expected = [
        f"echo hi in {app.name}",
        "abc",
        WelcomeTextReply("Welcome!"),
        BotUpdateTemplateCardReply(CARD),
    ]
    assert webhook_answers(app) == expected
    assert longconn_answers(app, bot, server) == expected


WEBHOOK = {"WECOM_AIBOT_TOKEN": generate_token(), "WECOM_AIBOT_ENCODING_AES_KEY": KEY}
LONGCONN = {"WECOM_AIBOT_BOT_ID": BOT, "WECOM_AIBOT_LONGCONN_SECRET": SECRET}


@pytest.mark.parametrize(
    ("config", "webhook"),
    [
        pytest.param(WEBHOOK, True, id="webhook"),
        pytest.param({**WEBHOOK, **LONGCONN}, True, id="both"),
        pytest.param(LONGCONN, False, id="longconn-only"),
    ],
)
def test_an_ai_bot_needs_the_webhook_keys_only_for_the_webhook(
    config: dict[str, str], webhook: bool
) -> None:
    app = Flask(__name__)
    app.config.update(config)
    bot = AIBot(app)
    bot.message("text")(sync_text)
    posted = app.test_client().post("/aibot?msg_signature=x&timestamp=1&nonce=n", data=b"{}")
    assert (posted.status_code != 404) is webhook  # the URL is mounted, or not at all
    assert app.extensions["wecom"].mounted == {"aibot": bot}  # the command finds the bot
    if webhook:
        assert bot.settings(app).token == config["WECOM_AIBOT_TOKEN"]
    else:  # no webhook settings or API client: said plainly, not a KeyError
        for read in (bot.settings, bot.client):
            with pytest.raises(RuntimeError, match="long connection only"):
                read(app)


@pytest.mark.parametrize(
    ("config", "keys"),
    [
        pytest.param(
            {},
            "WECOM_AIBOT_TOKEN, WECOM_AIBOT_ENCODING_AES_KEY (the webhook) or "
            "WECOM_AIBOT_BOT_ID, WECOM_AIBOT_LONGCONN_SECRET (the long connection)",
            id="nothing",
        ),
        pytest.param(
            {"WECOM_AIBOT_BOT_ID": BOT},
            "WECOM_AIBOT_TOKEN, WECOM_AIBOT_ENCODING_AES_KEY (the webhook) or "
            "WECOM_AIBOT_LONGCONN_SECRET (the long connection)",
            id="bot-id-only",
        ),
        pytest.param(
            {**LONGCONN, "WECOM_AIBOT_TOKEN": generate_token()},
            "WECOM_AIBOT_ENCODING_AES_KEY",
            id="half-a-webhook",
        ),
    ],
)
def test_an_ai_bot_without_a_complete_set_of_keys_names_them(
    config: dict[str, str], keys: str
) -> None:
    app = Flask(__name__)
    app.config.update(config)
    with pytest.raises(ConfigError) as raised:
        AIBot(app)
    assert raised.value.key == keys
    assert str(raised.value).startswith(f"{keys} must be set")


def test_a_self_built_app_still_needs_its_webhook_keys() -> None:
    app = Flask(__name__)
    app.config.update(WECOM_BOT_ID=BOT, WECOM_LONGCONN_SECRET=SECRET)  # no such thing for apps
    with pytest.raises(ConfigError) as raised:
        WeCom(app)
    assert raised.value.key == "WECOM_TOKEN, WECOM_ENCODING_AES_KEY, WECOM_CORP_ID"


@pytest.mark.parametrize(
    ("attempt", "low", "high"),
    [
        pytest.param(1, 0.5, 1.0, id="first"),
        pytest.param(3, 2.0, 4.0, id="doubling"),
        pytest.param(10, 15.0, 30.0, id="capped"),
    ],
)
def test_backoff_is_capped_exponential_with_jitter(attempt: int, low: float, high: float) -> None:
    rng = random.Random(7)
    delays = [Backoff().delay(attempt, rng) for _ in range(200)]
    assert low <= min(delays) and max(delays) <= high
    assert max(delays) - min(delays) > (high - low) / 2  # spread, so contenders do not align


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param("not json", id="not-json"),
        pytest.param("[1, 2]", id="array"),
        pytest.param('{"cmd": "aibot_msg_callback"}', id="no-headers"),
        pytest.param(
            '{"cmd": "aibot_msg_callback", "headers": {"req_id": 5}, "body": {}}', id="req-id-int"
        ),
        pytest.param(
            '{"cmd": "aibot_msg_callback", "headers": {"req_id": "r"}, "body": [1]}', id="body-list"
        ),
        pytest.param(
            '{"cmd": "aibot_msg_callback", "headers": {"req_id": "r"}, "body": {"msgtype": 7}}',
            id="bad-msgtype",
        ),
        pytest.param(
            '{"cmd": "aibot_event_callback", "headers": {"req_id": "r"}, "body": {"event": "x"}}',
            id="event-str",
        ),
        pytest.param('{"headers": {"req_id": "ping_1"}, "errcode": "x"}', id="bad-ack"),
        pytest.param(
            '{"cmd": "surprise", "headers": {"req_id": "r"}, "body": {}}', id="unknown-cmd"
        ),
        pytest.param("[" * 100000, id="deep-nesting"),
    ],
)
def test_malformed_frames_are_ignored_and_the_connection_stays(
    server: FakeLongConnServer, raw: str, caplog: pytest.LogCaptureFixture
) -> None:
    with running(echo_bot(), server):
        assert server.push_raw(raw)
        req_id = server.push_message("still here")
        assert server.wait_for(lambda: server.stream_text(req_id)) == "echo: still here"
    assert server.subscribes == 1
    assert not [r for r in caplog.records if r.name == "asyncio" or r.exc_info]


def test_the_core_imports_without_websockets() -> None:
    blocked = (
        "import sys; sys.modules['websockets'] = None\n"
        "import flask_wecom, flask_wecom.aio, flask_wecom.pipeline, flask_wecom.aibot, "
        "flask_wecom.asgi, flask_wecom.longconn_cli, flask_wecom.cli\n"
        "try:\n    import flask_wecom.longconn\nexcept ImportError:\n    print('needs websockets')"
    )
    result = subprocess.run([sys.executable, "-c", blocked], capture_output=True, text=True)
    assert (result.returncode, result.stdout) == (0, "needs websockets\n"), result.stderr


def test_busy_handler_threads_never_delay_the_lease(
    server: FakeLongConnServer, redis_url: str
) -> None:
    bot = BotReceiver()

    @bot.message("text")
    def slow(message: Message) -> str:
        time.sleep(1.5)  # the only handler thread, three lease periods long
        return "done"

    options: dict[str, Any] = {"lease_ttl": 0.5, "standby_poll": 0.05, "threads": 1}
    with running(bot, server, store=RedisStore(redis_url), **options):
        standby = LongConnection(
            bot, BOT, SECRET, url=server.url, store=RedisStore(redis_url), **options
        ).start()
        try:
            req_id = server.push_message("work")
            assert server.wait_for(lambda: server.stream_text(req_id)) == "done"
            assert (server.subscribes, server.kicks) == (1, 0)
        finally:
            standby.stop(5)


# --------------------------------------------------------------------------- handler threads


def test_the_handler_pool_hands_back_results_errors_and_context() -> None:
    """Many calls at once: each gets its own result or error, in the caller's context."""

    def handler(number: int) -> str:
        if number % 7 == 0:
            raise ValueError(number)
        time.sleep(0.001)
        return f"{number} {current_message.content} {threading.current_thread().name}"

    async def main() -> list[Any]:
        pool = HandlerPool(3, thread_name_prefix="lane")
        message = parse_message(aibot_payload("text", {"text": {"content": "hi"}}))
        with handling(Call(message, b"", "x", MemoryStore(), Runner(1))):
            calls = [aio.call(handler, n, executor=pool) for n in range(1, 50)]
            results = await asyncio.gather(*calls, return_exceptions=True)
        pool.shutdown()
        return results

    results = asyncio.run(main())
    for number, result in enumerate(results, 1):
        if number % 7 == 0:
            assert isinstance(result, ValueError) and result.args == (number,)
        else:
            text, threads = result.rsplit(" ", 1)
            assert text == f"{number} hi" and threads in {"lane_0", "lane_1", "lane_2"}


def test_the_handler_pool_serves_executor_callers_and_cancels_queued_jobs() -> None:
    pool = HandlerPool(1)
    started, gate = threading.Event(), threading.Event()

    def first_job() -> bool:
        started.set()
        return gate.wait(5)

    first = pool.submit(first_job)
    assert started.wait(5)  # the only thread runs it; the next one waits in the queue
    queued = pool.submit(lambda: "never")
    pool.shutdown(wait=False, cancel_futures=True)
    gate.set()
    assert first.result(5) is True
    assert queued.cancelled()
    with pytest.raises(RuntimeError, match="after shutdown"):
        pool.submit(print)


def test_a_cancelled_call_leaves_the_pool_working() -> None:
    async def main() -> str:
        pool = HandlerPool(2)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(pool.run(lambda: time.sleep(0.2)), 0.01)
        answer = await pool.run(lambda: "still here")
        pool.shutdown()
        return str(answer)

    assert asyncio.run(main()) == "still here"


def test_handlers_that_block_still_run_side_by_side() -> None:
    """A call waits for a busy thread only ``spread_after``: then another thread takes it."""
    together = threading.Barrier(4, timeout=5)  # broken unless four run at once

    async def main() -> set[str]:
        pool = HandlerPool(4, spread_after=0.005)

        def blocking() -> str:
            together.wait()
            return threading.current_thread().name

        names = await asyncio.gather(*(pool.run(blocking) for _ in range(4)))
        pool.shutdown()
        return set(names)

    assert len(asyncio.run(main())) == 4


# --------------------------------------------------------------------------- frames on the wire


def test_frames_are_answered_on_their_own_req_id_and_fail_once_closed(
    server: FakeLongConnServer,
) -> None:
    from websockets.asyncio.client import connect as connect_async

    from flask_wecom.longconn import AckError, NotConnected, _Session

    async def main() -> tuple[list[BaseException | dict[str, Any]], BaseException]:
        async with connect_async(server.url) as ws:
            session = _Session(ws, ack_timeout=2.0)

            async def read() -> None:
                async for raw in ws:
                    session.resolve(json.loads(raw))

            reader = asyncio.create_task(read())
            answers = await asyncio.gather(
                *(session.request("no_such_cmd", f"r{i}", {"n": i}) for i in range(5)),
                return_exceptions=True,
            )
            await ws.close()
            reader.cancel()
            try:
                await session.request("no_such_cmd", "late")
            except NotConnected as exc:
                late: BaseException = exc
            return answers, late

    answers, late = asyncio.run(main())
    assert all(isinstance(a, AckError) for a in answers)  # each answered on its own req_id
    assert isinstance(late, NotConnected)


@pytest.mark.parametrize(
    ("ack_delay", "ack_timeout", "delivered"),
    [
        pytest.param(0.0, 0.5, True, id="acked-in-time"),
        pytest.param(0.6, 0.15, False, id="ack-too-late"),
    ],
)
def test_replies_wait_ack_timeout_for_their_ack(
    ack_delay: float, ack_timeout: float, delivered: bool, caplog: pytest.LogCaptureFixture
) -> None:
    with (
        FakeLongConnServer(BOT, SECRET) as server,
        running(echo_bot(), server, ack_timeout=ack_timeout) as conn,
    ):
        server.ack_delay = ack_delay  # the subscribe was acked at once
        started = time.monotonic()
        for word in ("a", "b", "c"):
            server.push_message(word)
        server.wait_for(lambda: conn.stats["replies"] + conn.stats["reply_errors"] == 3)
        waited = time.monotonic() - started
    assert (conn.stats["replies"], conn.stats["reply_errors"]) == ((3, 0) if delivered else (0, 3))
    timeouts = [r for r in caplog.records if "longconn_ack_timeout" in r.getMessage()]
    assert len(timeouts) == (0 if delivered else 3)
    if not delivered:
        assert ack_timeout <= waited < ack_delay  # every frame timed out, none waited longer


@dataclass
class _SyncRecorder:
    """A handler object; a dataclass compares by value, so it is unhashable."""

    threads: list[threading.Thread] = field(default_factory=list)

    def __call__(self, message: str) -> str:
        self.threads.append(threading.current_thread())
        return f"sync {message}"


@dataclass
class _AsyncRecorder:
    threads: list[threading.Thread] = field(default_factory=list)

    async def __call__(self, message: str) -> str:
        self.threads.append(threading.current_thread())
        return f"async {message}"


@pytest.mark.parametrize(
    ("recorder", "on_loop"),
    [
        pytest.param(_SyncRecorder, False, id="sync-object"),
        pytest.param(_AsyncRecorder, True, id="async-object"),
    ],
)
def test_unhashable_handler_objects_run_where_their_kind_belongs(
    recorder: Callable[[], _SyncRecorder | _AsyncRecorder], on_loop: bool
) -> None:
    handler = recorder()
    with pytest.raises(TypeError):
        hash(handler)

    async def main() -> tuple[list[Any], threading.Thread]:
        with HandlerPool(2) as pool:
            results = [await aio.call(handler, "hi", executor=pool) for _ in range(2)]
        return results, threading.current_thread()

    results, loop_thread = asyncio.run(main())
    kind = "async" if on_loop else "sync"
    assert results == [f"{kind} hi"] * 2
    assert [t is loop_thread for t in handler.threads] == [on_loop] * 2


@pytest.mark.parametrize(
    "delivery",
    [
        pytest.param("fragmented", id="split-over-three-frames"),
        pytest.param("after-bad-utf8", id="after-a-text-frame-that-is-not-utf8"),
    ],
)
def test_callbacks_arrive_whole_split_or_after_a_bad_frame(delivery: str) -> None:
    """Whole text frames are taken straight from the connection; a message split over
    several frames still arrives through websockets' reader, and a text frame that is not
    UTF-8 is ignored without taking the connection down."""
    from websockets.asyncio.server import ServerConnection, serve

    replies: list[dict[str, Any]] = []
    answered = threading.Event()
    callback = {
        "cmd": "aibot_msg_callback",
        "headers": {"req_id": "REQ_FRAGMENTED"},
        "body": {
            "msgid": "M1",
            "msgtype": "text",
            "text": {"content": "split"},
            "from": {"userid": "u"},
        },
    }

    async def serve_one(ws: ServerConnection) -> None:
        async for raw in ws:
            frame = json.loads(raw)
            await ws.send(json.dumps({"headers": frame["headers"], "errcode": 0}))
            if frame["cmd"] == "aibot_subscribe":
                text = json.dumps(callback)
                if delivery == "fragmented":
                    await ws.send([text[:20], text[20:60], text[60:]])  # three frames
                else:
                    await ws.send(b"\xff\xfe not utf-8", text=True)
                    await ws.send(text)
            elif frame["cmd"] == "aibot_respond_msg":
                replies.append(frame)
                answered.set()

    async def run_server(ready: threading.Event, stop: asyncio.Event, port: list[int]) -> None:
        async with serve(serve_one, "127.0.0.1", 0) as server:
            port.append(server.sockets[0].getsockname()[1])
            ready.set()
            await stop.wait()

    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    ready, port = threading.Event(), []
    thread = threading.Thread(target=loop.run_until_complete, args=(run_server(ready, stop, port),))
    thread.start()
    try:
        assert ready.wait(5)
        conn = LongConnection(echo_bot(), BOT, SECRET, url=f"ws://127.0.0.1:{port[0]}").start()
        try:
            assert answered.wait(5)
        finally:
            conn.stop(5)
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(5)
        loop.close()
    assert replies[0]["headers"]["req_id"] == "REQ_FRAGMENTED"
    assert replies[0]["body"]["stream"]["content"] == "echo: split"
