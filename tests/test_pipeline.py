"""flask_wecom.pipeline on its own, without a web framework: each request's answer, outcome
and log line. Fast (no server, no host app), so it is the pipeline's mutation-test selection."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

import pytest

from flask_wecom.aibot import BotReceiver
from flask_wecom.client import WeComClient
from flask_wecom.crypto import WeComCrypto
from flask_wecom.dedup import Claim, Deduplicator, dedup_key
from flask_wecom.errors import (
    MethodNotAllowed,
    ParseError,
    PayloadTooLarge,
    SignatureError,
    TimestampError,
    WeComError,
)
from flask_wecom.messages import Message, parse_message
from flask_wecom.pipeline import (
    AfterSignature,
    Answer,
    Endpoint,
    NotACallback,
    Outcome,
    Pipeline,
    Verified,
    check_direction,
    parse_query,
)
from flask_wecom.receivers import Receiver
from flask_wecom.replies import Reply, TextReply, UpdateButtonReply
from flask_wecom.runner import Runner
from flask_wecom.stores import MemoryStore
from flask_wecom.suite import SuiteReceiver
from flask_wecom.testing import CallbackSigner, SignedRequest, aibot_payload, app_message_xml
from tests.support.vectors import CORP_ID, KEY, TOKEN

NOW = 1_700_000_000
OLD_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
OLD_TOKEN = "oldTokenAbcdef0123456789"
TEXT = [("Content-Type", "text/plain; charset=utf-8")]
XML = [("Content-Type", "application/xml; charset=utf-8")]
#: The one answer to every refusal after the signature checked out.
UNREADABLE = (
    b"parse (-40002): the callback could not be decrypted or read; the server log names the cause\n"
)


class Handlers(Receiver):
    """Text echoes ("slow" sleeps past a 0.1 s deadline); voice is deferred. Records the
    threads handlers and late deliveries ran on."""

    def __init__(self) -> None:
        super().__init__()
        self.late: list[Reply] = []
        self.threads: list[str] = []
        self.message("text")(self.echo)
        self.message("voice", deferred=True)(lambda m: "deferred")

    def echo(self, message: Message) -> str:
        self.threads.append(threading.current_thread().name)
        if message.content == "slow":
            time.sleep(0.2)
        return f"echo: {message.content}"

    def deliver(self, call: Any, reply: Reply) -> None:
        assert call.message.type in ("text", "voice")
        self.threads.append(threading.current_thread().name)
        self.late.append(reply)


class RecordingDeferrer:
    """A deferrer that keeps what it is handed (as a queue would) and the thread it ran on."""

    def __init__(self) -> None:
        self.deferred: list[tuple[str, bytes, str]] = []

    def defer(self, wecom_name: str, plaintext: bytes) -> None:
        self.deferred.append((wecom_name, plaintext, threading.current_thread().name))


def signer(token: str = TOKEN, key: str = KEY) -> CallbackSigner:
    return CallbackSigner(token, key, CORP_ID, clock=lambda: NOW)


class Setup:
    """A pipeline with one endpoint, its outcomes and the requests it answered."""

    def __init__(self, *, endpoint: Endpoint | None = None, **options: Any) -> None:
        self.receiver = Handlers()
        self.endpoint = endpoint or Endpoint(
            "/wecom",
            [WeComCrypto(TOKEN, KEY, CORP_ID), WeComCrypto(OLD_TOKEN, OLD_KEY, CORP_ID)],
            receiver=self.receiver,
            deadline=0.1,
        )
        self.outcomes: list[Outcome] = []
        options.setdefault("clock", lambda: NOW)
        self.pipeline = Pipeline([self.endpoint], hooks=[self.outcomes.append], **options)

    def send(
        self, request: SignedRequest, method: str | None = None, query: str | None = None
    ) -> Answer:
        def read(limit: int) -> bytes:
            if len(request.body) > limit:
                raise PayloadTooLarge("over the body cap")
            return request.body

        return self.pipeline.handle(
            self.endpoint,
            method or request.method,
            request.query_string if query is None else query,
            read,
            "10.0.0.1",
        )


def opened(setup: Setup, request: SignedRequest) -> Verified:
    """The callback verified and decrypted (steps 1 and 2), ready for the later steps."""
    query = setup.pipeline.check_query("POST", request.query_string)
    return setup.pipeline.open(setup.endpoint, query, request.body)


@pytest.fixture
def setup() -> Setup:
    return Setup()


def refusal_logged(caplog: pytest.LogCaptureFixture) -> dict[str, Any]:
    (record,) = [r for r in caplog.records if r.getMessage().startswith("refused")]
    return {
        "message": record.getMessage(),
        **{k: getattr(record, k) for k in ("wecom_endpoint", "wecom_method", "wecom_remote")},
        "reason": (record.wecom_reason, record.wecom_code),  # type: ignore[attr-defined]
    }


# -- URL verification ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("token", "key", "credential"),
    [(TOKEN, KEY, 0), (OLD_TOKEN, OLD_KEY, 1)],
    ids=["newest", "previous"],
)
def test_url_verification(setup: Setup, token: str, key: str, credential: int) -> None:
    answer = setup.send(signer(token, key).verification("1616140317555161061"))
    assert answer == Answer(200, TEXT, b"1616140317555161061")
    assert setup.outcomes == [Outcome("/wecom", "verified", 200, credential=credential)]


LONG_ECHO = "x" * 65


@pytest.mark.parametrize(
    ("options", "make", "status", "body", "reason"),
    [
        pytest.param(
            {"url_check": False},
            lambda s: s.verification("1"),
            405,
            b"method (-40000): URL verification is turned off (WECOM_URL_CHECK=false); turn it "
            b"on while saving the callback URL in the admin console\n",
            ("method", -40000),
            id="turned-off",
        ),
        pytest.param(
            {},
            lambda s: replace(
                s.verification("1"), query_string=query_of(s.verification("1"), echostr=None)
            ),
            400,
            b"parse (-40002): URL verification without echostr\n",
            ("parse", -40002),
            id="no-echostr",
        ),
        pytest.param(
            {"max_envelope": 40},
            lambda s: s.verification("1"),
            413,
            None,
            ("too_large", -40002),
            id="echostr-over-the-envelope-cap",
        ),
        pytest.param(
            {},
            lambda s: s.verification(LONG_ECHO),
            400,
            UNREADABLE,
            ("not_a_callback", -40002),
            id="echo-too-long",
        ),
        pytest.param(
            {},
            lambda s: s.verification("<xml><a>1</a></xml>"),
            400,
            UNREADABLE,
            ("not_a_callback", -40002),
            id="echo-is-xml",
        ),
        pytest.param(
            {},
            lambda s: s.verification("1", receive_id="wwother"),
            400,
            UNREADABLE,
            ("receive_id", -40005),
            id="other-receive-id",
        ),
        pytest.param(
            {},
            lambda s: s.verification("1", signature="0" * 40),
            403,
            None,
            ("signature", -40001),
            id="bad-signature",
        ),
    ],
)
def test_url_verification_refusals(
    options: dict[str, Any],
    make: Callable[[CallbackSigner], SignedRequest],
    status: int,
    body: bytes | None,
    reason: tuple[str, int],
    caplog: pytest.LogCaptureFixture,
) -> None:
    setup = Setup(**options)
    with caplog.at_level(logging.WARNING, logger="flask_wecom"):
        answer = setup.send(make(signer()))
    assert (answer.status, answer.headers) == (status, TEXT)
    if body is not None:
        assert answer.body == body
    assert setup.outcomes == [Outcome("/wecom", "refused", status, reason[0])]
    logged = refusal_logged(caplog)
    assert logged["message"].startswith(f"refused GET /wecom from 10.0.0.1: {reason[0]} (")
    assert (logged["wecom_endpoint"], logged["wecom_method"], logged["wecom_remote"]) == (
        "/wecom",
        "GET",
        "10.0.0.1",
    )
    assert logged["reason"] == reason


def test_an_echostr_exactly_at_the_envelope_cap_is_read() -> None:
    request = signer().verification("1")
    echostr = parse_query(request.query_string)["echostr"]
    answer = Setup(max_envelope=len(echostr)).send(request)
    assert answer == Answer(200, TEXT, b"1")


# -- the query, before the body -----------------------------------------------------------------


def query_of(request: SignedRequest, **changes: str | None) -> str:
    params = dict(p.split("=", 1) for p in request.query_string.split("&"))
    for name, value in changes.items():
        if value is None:
            params.pop(name)
        else:
            params[name] = value
    return "&".join(f"{k}={v}" for k, v in params.items())


@pytest.mark.parametrize(
    ("method", "changes", "status", "reason", "hint"),
    [
        pytest.param("PUT", {}, 405, "method", "PUT is not answered", id="put"),
        pytest.param("POST", {"msg_signature": None}, 403, "signature", "", id="no-signature"),
        pytest.param("POST", {"msg_signature": "a" * 39}, 403, "signature", "", id="sig-39"),
        pytest.param("POST", {"msg_signature": "a" * 41}, 403, "signature", "", id="sig-41"),
        pytest.param("POST", {"nonce": None}, 403, "signature", "", id="no-nonce"),
        pytest.param("POST", {"timestamp": None}, 403, "timestamp", "", id="no-timestamp"),
        pytest.param("POST", {"timestamp": ""}, 403, "timestamp", "", id="empty-timestamp"),
        pytest.param("POST", {"timestamp": "17e8"}, 403, "timestamp", "", id="not-digits"),
        pytest.param("POST", {"timestamp": "١٧٠٠"}, 403, "timestamp", "", id="arabic-digits"),
        pytest.param("POST", {"timestamp": "1" * 13}, 403, "timestamp", "", id="13-digits"),
        pytest.param("POST", {"timestamp": str(NOW - 301)}, 403, "timestamp", "", id="stale"),
        pytest.param("POST", {"timestamp": str(NOW + 301)}, 403, "timestamp", "", id="future"),
    ],
)
def test_query_refusals(
    setup: Setup, method: str, changes: dict[str, str | None], status: int, reason: str, hint: str
) -> None:
    request = signer().text("hi")
    answer = setup.send(request, method=method, query=query_of(request, **changes))
    assert answer.status == status
    assert answer.body.startswith(f"{reason} (".encode())
    assert hint.encode() in answer.body
    allow = [("Allow", "GET, POST")] if method == "PUT" else []
    assert answer.headers == TEXT + allow
    assert setup.outcomes == [Outcome("/wecom", "refused", status, reason)]


@pytest.mark.parametrize("skew", [-300, 300, 0], ids=["oldest", "newest", "now"])
def test_the_replay_window_holds_its_edges(setup: Setup, skew: int) -> None:
    request = signer().callback(
        signer().text("edge").plaintext, timestamp=NOW + skew, nonce=f"n{skew}"
    )
    assert setup.send(request).status == 200


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param("", {}, id="empty"),
        pytest.param("a=1&b", {"a": "1", "b": ""}, id="no-value"),
        pytest.param("e=a+b%2Bc%3D", {"e": "a+b+c="}, id="plus-stays-plus"),
        pytest.param("e=a+b", {"e": "a+b"}, id="nothing-to-decode"),
        pytest.param("%6E=1", {"n": "1"}, id="encoded-name"),
    ],
)
def test_parse_query(raw: str, expected: dict[str, str]) -> None:
    assert parse_query(raw) == expected


@pytest.mark.parametrize("raw", ["n=1&n=2", "n=1&%6E=2"], ids=["plain", "encoded"])
def test_a_repeated_parameter_is_refused(raw: str) -> None:
    with pytest.raises(ParseError, match="duplicate query parameter 'n'"):
        parse_query(raw)


# -- callbacks ----------------------------------------------------------------------------------


def test_a_callback_is_answered_replayed_and_waited(setup: Setup) -> None:
    request = signer().text("hi")
    answer = setup.send(request)
    assert (answer.status, answer.headers) == (200, XML)
    assert signer().decrypt_reply(answer.body, request) == TextReply("echo: hi").render(
        parse_message(request.plaintext)
    ).encode("utf-8")
    retry = signer().callback(request.plaintext, nonce="retry-nonce")
    replayed = setup.send(retry)
    assert (replayed.status, replayed.headers) == (200, XML)
    assert signer().decrypt_reply(replayed.body, retry) == signer().decrypt_reply(
        answer.body, request
    )
    first, second = setup.outcomes
    assert first._replace(handler_seconds=None) == Outcome(
        "/wecom", "accepted", 200, credential=0, dedup="first"
    )
    assert first.handler_seconds is not None and 0 <= first.handler_seconds < 0.1
    assert second == Outcome("/wecom", "replayed", 200, credential=0, dedup="replay")


def test_a_retry_while_the_first_runs_is_answered_empty(setup: Setup) -> None:
    request = signer().text("running")
    verified = opened(setup, request)
    claim = setup.pipeline.claim(verified)
    assert claim is not None and claim.state == "first"
    setup.pipeline.dedup = Deduplicator(setup.pipeline.store, wait=0)
    assert setup.send(signer().callback(request.plaintext, nonce="n2")) == Answer(200, [], b"")
    assert setup.outcomes == [Outcome("/wecom", "waited", 200, credential=0, dedup="waited")]


def test_a_reply_sealed_by_the_previous_credentials_replays_with_them(setup: Setup) -> None:
    old = signer(OLD_TOKEN, OLD_KEY)
    request = old.text("rotating")
    setup.send(request)
    retry = old.callback(request.plaintext, nonce="n2")
    assert old.decrypt_reply(setup.send(retry).body, retry) is not None
    assert [o.credential for o in setup.outcomes] == [1, 1]


def test_a_replay_with_an_unknown_credential_uses_the_verifying_one(setup: Setup) -> None:
    request = signer().text("gone")
    verified = opened(setup, request)
    sealed = WeComCrypto(TOKEN, KEY, CORP_ID).encrypt(b"<xml>R</xml>", CORP_ID)
    answer = setup.pipeline.replay(verified, Claim("replay", "k", reply=sealed, credential=5))
    assert signer().decrypt_reply(answer.body, request) == b"<xml>R</xml>"


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        pytest.param(lambda s: s.callback(b"<xml>\x00"), "parse", id="not-xml"),
        pytest.param(lambda s: s.text("x", receive_id="wwother"), "receive_id", id="receive-id"),
        pytest.param(
            lambda s: s.callback(app_message_xml("text", {"FromUserName": CORP_ID}, to_user="u")),
            "not_a_callback",
            id="a-reply-of-ours",
        ),
        pytest.param(
            lambda s: s.callback(
                app_message_xml("text", {"FromUserName": "u", "AgentID": 7}, to_user=CORP_ID)
            ),
            "not_a_callback",
            id="another-agent",
        ),
    ],
)
def test_every_refusal_after_the_signature_gets_one_answer(
    make: Callable[[CallbackSigner], SignedRequest],
    reason: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    endpoint = Endpoint(
        "/wecom", WeComCrypto(TOKEN, KEY, CORP_ID), receiver=Handlers(), agent_id=1000002
    )
    setup = Setup(endpoint=endpoint)
    with caplog.at_level(logging.WARNING, logger="flask_wecom"):
        answer = setup.send(make(signer()))
    assert answer == Answer(400, TEXT, UNREADABLE)
    assert setup.outcomes == [Outcome("/wecom", "refused", 400, reason)]
    assert refusal_logged(caplog)["message"].startswith(
        f"refused POST /wecom from 10.0.0.1: {reason}"
    )


@pytest.mark.parametrize(("extra", "status"), [(0, 200), (1, 413)], ids=["at-cap", "over-cap"])
def test_the_envelope_cap(extra: int, status: int) -> None:
    request = signer().text("cap")
    answer = Setup(max_envelope=len(request.body) - extra).send(request)
    assert answer.status == status


def test_the_body_cap(caplog: pytest.LogCaptureFixture) -> None:
    request = signer().text("cap")
    with caplog.at_level(logging.WARNING, logger="flask_wecom"):
        answer = Setup(max_body=len(request.body) - 1).send(request)
    assert (answer.status, refusal_logged(caplog)["reason"]) == (413, ("too_large", -40002))
    assert Setup(max_body=len(request.body)).send(request).status == 200


def test_an_acknowledging_endpoint_answers_its_literal(caplog: pytest.LogCaptureFixture) -> None:
    endpoint = Endpoint("/suite", WeComCrypto(TOKEN, KEY, CORP_ID), receiver=SuiteReceiver())
    setup = Setup(endpoint=endpoint)
    request = signer().callback(
        app_message_xml("event", {"FromUserName": "u", "Event": "x"}, to_user=CORP_ID)
    )
    assert setup.send(request) == Answer(200, TEXT, b"success")
    assert setup.send(signer().callback(request.plaintext, nonce="again")) == Answer(
        200, TEXT, b"success"
    )


# -- routing and running ------------------------------------------------------------------------


def test_a_handler_past_the_deadline_answers_empty_and_replies_late(
    setup: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="flask_wecom"):
        assert setup.send(signer().text("slow")) == Answer(200, [], b"")
    setup.pipeline.runner.drain(5)
    assert setup.receiver.late == [TextReply("echo: slow")]
    assert any(
        r.getMessage()
        == "handler for text/- missed the 0.1 s deadline; its reply goes through the API"
        for r in caplog.records
    )


def test_a_deferred_handler_answers_empty_and_runs_later(setup: Setup) -> None:
    assert setup.send(signer().message("voice", {"MediaId": "m"})) == Answer(200, [], b"")
    setup.pipeline.runner.drain(5)
    assert setup.receiver.late == [TextReply("deferred")]


def test_an_inline_endpoint_runs_the_handler_on_the_request_thread() -> None:
    receiver = Handlers()
    endpoint = Endpoint("/wecom", WeComCrypto(TOKEN, KEY, CORP_ID), receiver=receiver, deadline=0)
    request = signer().text("slow")
    answer = Setup(endpoint=endpoint).send(request)
    assert signer().decrypt_reply(answer.body, request) is not None
    assert receiver.late == []


def test_a_reply_that_cannot_answer_this_callback_is_answered_empty(
    caplog: pytest.LogCaptureFixture,
) -> None:
    receiver = Receiver()
    receiver.event("subscribe")(lambda m: UpdateButtonReply("ok"))  # for template_card_event
    receiver.message("text")(lambda m: UpdateButtonReply("ok"))
    setup = Setup(endpoint=Endpoint("/wecom", WeComCrypto(TOKEN, KEY, CORP_ID), receiver=receiver))
    with caplog.at_level(logging.ERROR, logger="flask_wecom"):
        answers = [setup.send(signer().subscribe()), setup.send(signer().text("t"))]
    assert answers == [Answer(200, [], b"")] * 2
    assert [r.getMessage() for r in caplog.records] == [
        "reply refused for event/subscribe; answering empty",
        "reply refused for text/-; answering empty",
    ]


def test_a_wrapped_app_answers_for_an_endpoint_without_a_receiver() -> None:
    endpoint = Endpoint("/wecom", WeComCrypto(TOKEN, KEY, CORP_ID))
    setup = Setup(endpoint=endpoint)
    seen: list[str | None] = []

    def app(verified: Any, claim: Claim | None) -> tuple[int, list[tuple[str, str]], bytes]:
        seen.append(claim.state if claim else None)
        status = 500 if len(seen) == 1 else 201
        return status, [("Content-Type", "text/xml"), ("X-App", "1")], b"<xml>app</xml>"

    def send(request: SignedRequest) -> Answer:
        return setup.pipeline.handle(
            endpoint, "POST", request.query_string, lambda limit: request.body, "?", app
        )

    request = signer().text("hi")
    assert send(request) == Answer(
        500, [("Content-Type", "text/xml"), ("X-App", "1")], b"<xml>app</xml>"
    )
    retry = signer().callback(request.plaintext, nonce="n2")
    answer = send(retry)
    assert (answer.status, answer.headers) == (201, [("X-App", "1"), *XML])
    assert signer().decrypt_reply(answer.body, retry) == b"<xml>app</xml>"
    assert seen == ["first", "first"]  # the 500 released the claim
    with pytest.raises(RuntimeError, match="no receiver"):
        setup.pipeline.route(opened(setup, retry))


def test_a_failing_outcome_hook_is_logged_and_ignored(caplog: pytest.LogCaptureFixture) -> None:
    setup = Setup()

    def broken(outcome: Outcome) -> None:
        raise ValueError("hook bug")

    setup.pipeline.hooks.insert(0, broken)
    with caplog.at_level(logging.ERROR, logger="flask_wecom"):
        assert setup.send(signer().verification("1")).status == 200
    assert len(setup.outcomes) == 1
    assert caplog.records[0].getMessage().startswith("outcome hook <function")


@pytest.mark.parametrize(
    "dispatch",
    [
        pytest.param(lambda setup, verified: setup.pipeline.dispatch(verified), id="sync"),
        pytest.param(
            lambda setup, verified: asyncio.run(setup.pipeline.dispatch_async(verified)),
            id="async",
        ),
    ],
)
@pytest.mark.parametrize(
    ("content", "errors"),
    [
        pytest.param("raise", ["ValueError"], id="handler-raises"),
        pytest.param("bad-type", ["TypeError"], id="handler-returns-no-reply-type"),
    ],
)
def test_an_unusable_error_handler_result_is_logged_once(
    dispatch: Callable[[Setup, Verified], Reply | None],
    content: str,
    errors: list[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The error handler runs once per failure, sync or async; its own unusable result is
    logged, never fed back to it."""
    receiver = Receiver()
    crypto = WeComCrypto(TOKEN, KEY, CORP_ID)
    setup = Setup(endpoint=Endpoint("/wecom", [crypto], receiver=receiver, deadline=0))

    @receiver.message("text")
    def failing(message: Message) -> Any:
        if message.content == "raise":
            raise ValueError("handler bug")
        return 42

    seen: list[str] = []

    @receiver.errorhandler
    def unusable(message: Message, exc: Exception) -> Any:
        seen.append(type(exc).__name__)
        return 43

    with caplog.at_level(logging.ERROR, logger="flask_wecom"):
        assert dispatch(setup, opened(setup, signer().text(content))) is None
    assert seen == errors
    assert [r.getMessage() for r in caplog.records] == ["the WeCom error handler failed"]


def test_async_dispatch_runs_the_handler_and_defers_past_the_deadline() -> None:
    setup = Setup()
    pipeline = setup.pipeline

    def verified(request: SignedRequest) -> Verified:
        return opened(setup, request)

    async def run() -> list[Reply | None]:
        replies = [
            await pipeline.dispatch_async(verified(signer().text(content)))
            for content in ("hi", "slow")
        ]
        replies.append(await pipeline.dispatch_async(verified(signer().subscribe())))
        replies.append(
            await pipeline.dispatch_async(verified(signer().message("voice", {"MediaId": "m"})))
        )
        await pipeline.drain()
        return replies

    assert asyncio.run(run()) == [TextReply("echo: hi"), None, None, None]
    assert sorted(map(repr, setup.receiver.late)) == sorted(
        map(repr, [TextReply("echo: slow"), TextReply("deferred")])
    )


# -- direction ----------------------------------------------------------------------------------

ENDPOINT = Endpoint("/wecom", WeComCrypto(TOKEN, KEY, CORP_ID), agent_id=1000002)


@pytest.mark.parametrize(
    ("document", "accepted"),
    [
        pytest.param(
            app_message_xml("text", {"FromUserName": "u"}, to_user=CORP_ID), True, id="ok"
        ),
        pytest.param(app_message_xml("text", {"FromUserName": "u"}, to_user=""), True, id="no-to"),
        pytest.param(
            app_message_xml("text", {"FromUserName": CORP_ID}, to_user=CORP_ID), False, id="from-us"
        ),
        pytest.param(
            app_message_xml("text", {"FromUserName": "u"}, to_user="wwx"), False, id="to-another"
        ),
        pytest.param(
            app_message_xml("text", {"FromUserName": "u", "AgentID": 1000002}, to_user=CORP_ID),
            True,
            id="our-agent",
        ),
        pytest.param(
            app_message_xml("text", {"FromUserName": "u", "AgentID": ""}, to_user=CORP_ID),
            True,
            id="empty-agent",
        ),
        pytest.param(
            app_message_xml("text", {"FromUserName": "u", "AgentID": 3}, to_user=CORP_ID),
            False,
            id="another-agent",
        ),
        pytest.param(aibot_payload("text", {}), True, id="bot-callback"),
        pytest.param(aibot_payload("text", {}, aibotid=""), True, id="bot-sender-only"),
        pytest.param(aibot_payload("text", {}, **{"from": {}}), True, id="bot-id-only"),
        pytest.param(
            aibot_payload("stream", {}, aibotid="", **{"from": {}}), False, id="bot-reply"
        ),
    ],
)
def test_check_direction(document: str, accepted: bool) -> None:
    message = parse_message(document.encode())
    if accepted:
        check_direction(ENDPOINT, message)
    else:
        with pytest.raises(NotACallback):
            check_direction(ENDPOINT, message)


def test_an_endpoint_without_an_agent_id_takes_any() -> None:
    endpoint = Endpoint("/wecom", WeComCrypto(TOKEN, KEY, CORP_ID))
    document = app_message_xml("text", {"FromUserName": "u", "AgentID": 3}, to_user=CORP_ID)
    check_direction(endpoint, parse_message(document.encode()))


# -- endpoints and pipelines --------------------------------------------------------------------


def test_endpoint_defaults_and_conversions() -> None:
    crypto = WeComCrypto(TOKEN, KEY, CORP_ID)
    plain = Endpoint("/wecom", crypto)
    assert (plain.name, plain.format, plain.acknowledge, plain.agent_id, plain.deadline) == (
        "/wecom",
        "xml",
        "",
        None,
        4.0,
    )
    assert (plain.url_receive_ids, plain.callback_receive_ids, plain.receiver) == (None, None, None)
    assert plain.credentials == (crypto,) and plain.receive_ids == frozenset({CORP_ID})
    bot = Endpoint(
        "/aibot",
        [crypto],
        name="bot",
        receiver=BotReceiver(),
        agent_id=7,
        deadline=0,
        url_receive_ids=["a", "a"],
        callback_receive_ids=("b",),
    )
    assert (bot.name, bot.format, bot.agent_id, bot.deadline) == ("bot", "json", "7", 0)
    assert (bot.url_receive_ids, bot.callback_receive_ids) == (frozenset("a"), frozenset("b"))
    suite = Endpoint("/suite", crypto, receiver=SuiteReceiver())
    assert (suite.acknowledge, Endpoint("/s", crypto, "json", "n", "ok").acknowledge) == (
        "success",
        "ok",
    )
    assert Endpoint("/s", crypto, receiver=SuiteReceiver(), acknowledge="").acknowledge == ""
    assert Endpoint("/s", crypto, agent_id="").agent_id is None


@pytest.mark.parametrize(
    ("args", "options", "message"),
    [
        pytest.param(("wecom",), {}, "must start with '/'", id="path"),
        pytest.param(("/w", []), {}, "needs one WeComCrypto", id="no-credentials"),
        pytest.param(("/w", ["x"]), {}, "needs one WeComCrypto", id="not-credentials"),
        pytest.param(("/w", None, "yaml"), {}, "format must be", id="format"),
        pytest.param(("/w",), {"deadline": 5}, "deadline must be", id="deadline-5"),
        pytest.param(("/w",), {"deadline": -0.1}, "deadline must be", id="deadline-negative"),
    ],
)
def test_endpoint_arguments_are_checked(
    args: tuple[Any, ...], options: dict[str, Any], message: str
) -> None:
    crypto = WeComCrypto(TOKEN, KEY, CORP_ID)
    full = (args[0], crypto if len(args) < 2 or args[1] is None else args[1], *args[2:])
    with pytest.raises(ValueError, match=message):
        Endpoint(*full, **options)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        pytest.param({"max_body": 0}, "max_body and max_envelope", id="max-body"),
        pytest.param({"max_envelope": 0}, "max_body and max_envelope", id="max-envelope"),
        pytest.param({"tolerance": 0}, "tolerance must be", id="tolerance"),
        pytest.param(
            {"dedup": Deduplicator(ttl=599.9)}, r"ttl \(599.9 s.*\(300 s", id="ttl-under-twice"
        ),
    ],
)
def test_pipeline_arguments_are_checked(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Pipeline(**options)


def test_pipeline_stores_and_dedup() -> None:
    store = MemoryStore()
    dedup = Deduplicator(store, ttl=600)
    assert Pipeline(dedup=dedup).store is store
    assert Pipeline(dedup=dedup, store=MemoryStore()).dedup is dedup
    made = Pipeline(store=store).dedup
    assert made is not None and made.store is store
    assert Pipeline(dedup=False).dedup is None
    assert Pipeline(max_body=1, max_envelope=1, tolerance=0.5, dedup=False).tolerance == 0.5


def test_endpoints_are_mounted_once(caplog: pytest.LogCaptureFixture) -> None:
    crypto = WeComCrypto(TOKEN, KEY, CORP_ID)
    pipeline = Pipeline([Endpoint("/a", crypto, agent_id=1)])
    with pytest.raises(ValueError, match="already mounted at '/a'"):
        pipeline.add_endpoint(Endpoint("/a", crypto, name="other"))
    with pytest.raises(ValueError, match="already named '/a'"):
        pipeline.add_endpoint(Endpoint("/b", crypto, name="/a"))
    with caplog.at_level(logging.WARNING, logger="flask_wecom"):
        pipeline.add_endpoint(Endpoint("/c", crypto, agent_id=2))  # apart by agent id
        pipeline.add_endpoint(Endpoint("/d", WeComCrypto(OLD_TOKEN, KEY, CORP_ID)))
        pipeline.add_endpoint(Endpoint("/e", crypto))
    advice = (
        "share a credential set: each accepts the other's callbacks; give each its agent id "
        "(WECOM_AGENT_ID) or its own Token"
    )
    assert [r.getMessage() for r in caplog.records] == [
        f"endpoints /a and /e {advice}",
        f"endpoints /c and /e {advice}",
    ]
    assert [e.path for e in pipeline.endpoints] == ["/a", "/c", "/d", "/e"]
    assert pipeline.endpoint("/d") is pipeline.endpoints[2] and pipeline.endpoint("/x") is None


def test_a_stream_refresh_is_never_deduplicated() -> None:
    bot = BotReceiver()
    bot.message("stream")(lambda m: "a handler never sees a refresh")
    endpoint = Endpoint("/aibot", WeComCrypto(TOKEN, KEY, ""), receiver=bot)
    setup = Setup(endpoint=endpoint)
    bot_signer = CallbackSigner(TOKEN, KEY, "", format="json", clock=lambda: NOW)
    refresh = aibot_payload("stream", {"stream": {"id": "s1"}}, msgid="r1")
    for nonce in ("a", "b"):
        request = bot_signer.callback(refresh, nonce=nonce)
        answer = bot_signer.decrypt_reply(setup.send(request).body, request)
        assert answer is not None  # from the stream state, which has no stream s1
        assert json.loads(answer)["stream"] == {"id": "s1", "finish": True, "content": ""}
    assert [o.dedup for o in setup.outcomes] == [None, None]


def test_timestamp_errors_keep_the_query(setup: Setup) -> None:
    request = signer().callback(b"<xml/>", timestamp=NOW - 1000, nonce="nn")
    with pytest.raises(TimestampError) as raised:
        setup.pipeline.check_query("POST", request.query_string)
    assert (raised.value.timestamp, raised.value.nonce) == (str(NOW - 1000), "nn")


# -- more edges -------------------------------------------------------------------------------


def test_after_signature_reads_as_its_cause() -> None:
    cause = NotACallback("a reply of ours")
    wrapped = AfterSignature(cause)
    assert (str(wrapped), wrapped.error) == ("a reply of ours", cause)


@pytest.mark.parametrize(
    ("echo", "line"),
    [
        pytest.param(
            "1",
            "signature (-40001): msg_signature does not match; " + SignatureError.hint,
            id="with-a-hint",
        ),
        pytest.param(
            "<xml/>",
            "not_a_callback (-40002): the decrypted echostr is not a short token (at most 64 "
            "letters and digits): a captured message sent as an echostr",
            id="without",
        ),
    ],
)
def test_a_refusal_log_line_in_full(
    setup: Setup, echo: str, line: str, caplog: pytest.LogCaptureFixture
) -> None:
    request = signer().verification(echo, signature="0" * 40 if echo == "1" else None)
    query = setup.pipeline.check_query("GET", request.query_string)
    with caplog.at_level(logging.WARNING, logger="flask_wecom"):
        setup.pipeline.verify_url(setup.endpoint, query)  # no remote given
    assert refusal_logged(caplog)["message"] == f"refused GET /wecom from ?: {line}"


def test_handle_without_a_remote_logs_a_question_mark(
    setup: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="flask_wecom"):
        setup.pipeline.handle(setup.endpoint, "PUT", "", lambda limit: b"")
    assert refusal_logged(caplog)["wecom_remote"] == "?"


def test_busy_handler_threads_answer_503_and_a_retry_runs_later(
    caplog: pytest.LogCaptureFixture,
) -> None:
    setup = Setup(runner=Runner(1))
    assert setup.send(signer().text("slow")) == Answer(200, [], b"")  # still on the thread
    request = signer().text("hi")
    with caplog.at_level(logging.WARNING, logger="flask_wecom"):
        busy = setup.send(request)
    assert busy.status == 503 and busy.body.startswith(b"busy (-40000): ")
    assert setup.outcomes[-1] == Outcome("/wecom", "refused", 503, "busy")
    assert refusal_logged(caplog)["message"].startswith("refused POST /wecom from 10.0.0.1: busy")
    setup.pipeline.runner.drain(5)
    retry = signer().callback(request.plaintext, nonce="later")
    assert signer().decrypt_reply(setup.send(retry).body, retry) is not None
    assert setup.outcomes[-1].dedup == "first"  # the refusal released the claim


def test_an_app_that_raises_releases_the_claim() -> None:
    endpoint = Endpoint("/wecom", WeComCrypto(TOKEN, KEY, CORP_ID))
    setup = Setup(endpoint=endpoint)
    seen: list[tuple[str | None, str]] = []

    def app(verified: Verified, claim: Claim | None) -> tuple[int, list[tuple[str, str]], bytes]:
        seen.append((claim.state if claim else None, verified.remote))
        if len(seen) == 1:
            raise RuntimeError("app bug")
        return 204, [("X-App", "1")], b""

    def send(request: SignedRequest) -> Answer:
        return setup.pipeline.handle(
            endpoint, "POST", request.query_string, lambda limit: request.body, "10.0.0.9", app
        )

    request = signer().text("hi")
    with pytest.raises(RuntimeError, match="app bug"):
        send(request)
    assert send(signer().callback(request.plaintext, nonce="n2")) == Answer(
        204, [("X-App", "1")], b""
    )
    assert seen == [("first", "10.0.0.9"), ("first", "10.0.0.9")]


def test_a_receiver_answers_even_when_an_app_is_given(setup: Setup) -> None:
    request = signer().text("hi")
    answer = setup.pipeline.handle(
        setup.endpoint,
        "POST",
        request.query_string,
        lambda limit: request.body,
        "?",
        lambda verified, claim: (500, [], b"app"),
    )
    assert answer.status == 200 and signer().decrypt_reply(answer.body, request) is not None


def test_the_reply_is_encrypted_for_the_callbacks_receive_id(setup: Setup) -> None:
    request = signer().text("hi")
    answer = setup.send(request)
    encrypted = answer.body.split(b"<Encrypt><![CDATA[")[1].split(b"]]>")[0].decode()
    assert WeComCrypto(TOKEN, KEY, CORP_ID).decrypt(encrypted)[1] == CORP_ID


def test_settle_stores_the_newest_credential_by_default(setup: Setup) -> None:
    verified = opened(setup, signer().text("hi"))
    claim = setup.pipeline.claim(verified)
    setup.pipeline.settle(claim, "SEALED")
    replay = setup.pipeline.claim(verified)
    assert replay is not None and (replay.reply, replay.credential) == ("SEALED", 0)
    setup.pipeline.settle(None, "ignored")  # no claim: nothing to settle


def test_an_ai_bot_is_answered_and_replayed_in_json() -> None:
    bot = BotReceiver()
    bot.message("text")(lambda m: "answer")
    setup = Setup(endpoint=Endpoint("/aibot", WeComCrypto(TOKEN, KEY, ""), receiver=bot))
    bot_signer = CallbackSigner(TOKEN, KEY, "", format="json", clock=lambda: NOW)
    request = bot_signer.callback(aibot_payload("text", {"text": {"content": "q"}}, msgid="m1"))
    answers = [setup.send(request), setup.send(bot_signer.callback(request.plaintext, nonce="r"))]
    for answer in answers:
        assert (answer.status, answer.headers) == (
            200,
            [("Content-Type", "application/json; charset=utf-8")],
        )
        assert answer.body.startswith(b"{")
    assert [o.outcome for o in setup.outcomes] == ["accepted", "replayed"]


@pytest.mark.parametrize(
    ("method", "error", "allow"),
    [
        pytest.param("DELETE", MethodNotAllowed("no"), True, id="delete"),
        pytest.param("GET", MethodNotAllowed("off"), False, id="get-turned-off"),
        pytest.param("POST", MethodNotAllowed("off"), False, id="post"),
        pytest.param("DELETE", ParseError("bad"), False, id="other-error"),
    ],
)
def test_allow_is_sent_only_for_a_method_wecom_never_uses(
    setup: Setup, method: str, error: WeComError, allow: bool
) -> None:
    answer = setup.pipeline.refuse(setup.endpoint, method, "?", error)
    assert (("Allow", "GET, POST") in answer.headers) is allow


SUITE_ID = "wwsuite0123456789"


@pytest.mark.parametrize(
    ("make", "status"),
    [
        pytest.param(lambda s: s.verification("1", receive_id=CORP_ID), 200, id="url-corp"),
        pytest.param(lambda s: s.verification("1", receive_id=SUITE_ID), 400, id="url-suite"),
        pytest.param(lambda s: s.subscribe(receive_id=SUITE_ID), 200, id="callback-suite"),
        pytest.param(lambda s: s.subscribe(receive_id=CORP_ID), 400, id="callback-corp"),
    ],
)
def test_receive_ids_per_method(
    make: Callable[[CallbackSigner], SignedRequest], status: int
) -> None:
    """A suite verifies its URL with the provider CorpID and gets callbacks for its SuiteID."""
    endpoint = Endpoint(
        "/suite",
        WeComCrypto(TOKEN, KEY, [CORP_ID, SUITE_ID]),
        receiver=Handlers(),
        url_receive_ids=[CORP_ID],
        callback_receive_ids=[SUITE_ID],
    )
    request = make(CallbackSigner(TOKEN, KEY, CORP_ID, clock=lambda: NOW, to_user=""))
    assert Setup(endpoint=endpoint).send(request).status == status


def test_a_reply_is_encrypted_for_the_receive_id_its_callback_came_with() -> None:
    endpoint = Endpoint("/suite", WeComCrypto(TOKEN, KEY, [CORP_ID, SUITE_ID]), receiver=Handlers())
    request = CallbackSigner(TOKEN, KEY, CORP_ID, clock=lambda: NOW, to_user="").text(
        "hi", receive_id=SUITE_ID
    )
    body = Setup(endpoint=endpoint).send(request).body
    encrypted = body.split(b"<Encrypt><![CDATA[")[1].split(b"]]>")[0].decode()
    assert WeComCrypto(TOKEN, KEY, [CORP_ID, SUITE_ID]).decrypt(encrypted)[1] == SUITE_ID


@pytest.mark.parametrize(
    ("credential", "sealer"),
    [(0, "newest"), (1, "previous"), (2, "verifying"), (5, "verifying")],
    ids=["stored-by-newest", "stored-by-previous", "one-past-the-list", "unknown"],
)
def test_a_replay_is_sealed_with_the_credentials_that_encrypted_it(
    setup: Setup, credential: int, sealer: str
) -> None:
    """A retry verified by the previous credentials still gets the reply as stored; a stored
    index the endpoint no longer has falls back to the verifying credentials."""
    old = signer(OLD_TOKEN, OLD_KEY)
    request = old.text("rotating")
    verified = opened(setup, request)
    sealers = {"newest": signer(), "previous": old, "verifying": old}
    crypto = setup.endpoint.credentials[min(credential, 1)]
    stored = crypto.encrypt(b"<xml>R</xml>", CORP_ID)
    answer = setup.pipeline.replay(
        verified, Claim("replay", "k", reply=stored, credential=credential)
    )
    assert sealers[sealer].decrypt_reply(answer.body, request) == b"<xml>R</xml>"


def test_answer_defaults_to_200(setup: Setup) -> None:
    request = signer().text("x")
    answer = setup.pipeline.answer(opened(setup, request), None, b"<xml>a</xml>")
    assert answer.status == 200 and signer().decrypt_reply(answer.body, request) == b"<xml>a</xml>"


@pytest.mark.parametrize(
    ("status", "passes"),
    [(199, True), (200, False), (299, False), (300, True), (500, True)],
)
def test_only_a_2xx_app_answer_is_encrypted(status: int, passes: bool) -> None:
    endpoint = Endpoint("/wecom", WeComCrypto(TOKEN, KEY, CORP_ID))
    setup = Setup(endpoint=endpoint)
    request = signer().text("hi")
    answer = setup.pipeline.handle(
        endpoint,
        "POST",
        request.query_string,
        lambda limit: request.body,
        "?",
        lambda verified, claim: (status, [], b"<xml>app</xml>"),
    )
    assert answer.status == status
    assert (answer.body == b"<xml>app</xml>") is passes
    retry = signer().callback(request.plaintext, nonce="again")
    claim = setup.pipeline.claim(opened(setup, retry))
    assert claim is not None and claim.state == ("first" if passes else "replay")


def test_a_deferrer_gets_deferred_handlers() -> None:
    deferrer = RecordingDeferrer()
    endpoint = Endpoint(
        "/wecom", WeComCrypto(TOKEN, KEY, CORP_ID), receiver=Handlers(), deferrer=deferrer
    )
    request = signer().message("voice", {"MediaId": "m"})
    assert Setup(endpoint=endpoint).send(request) == Answer(200, [], b"")
    assert deferrer.deferred == [("wecom", request.plaintext, threading.current_thread().name)]


def test_async_dispatch_uses_the_executor_and_the_deferrer() -> None:
    deferrer = RecordingDeferrer()
    receiver = Handlers()
    inline = Endpoint(
        "/wecom",
        WeComCrypto(TOKEN, KEY, CORP_ID),
        receiver=receiver,
        deadline=0,
        deferrer=deferrer,
    )
    setup = Setup(endpoint=inline)
    requests = [signer().text("hi"), signer().message("voice", {"MediaId": "m"})]

    async def run(executor: ThreadPoolExecutor) -> list[Reply | None]:
        replies = [
            await setup.pipeline.dispatch_async(opened(setup, r), executor) for r in requests
        ]
        await setup.pipeline.drain()
        return replies

    with ThreadPoolExecutor(1, thread_name_prefix="app-pool") as executor:
        assert asyncio.run(run(executor)) == [TextReply("echo: hi"), None]
    assert receiver.threads == ["app-pool_0"]
    assert deferrer.deferred == [("wecom", requests[1].plaintext, "app-pool_0")]


def test_async_dispatch_past_the_deadline_delivers_on_the_executor() -> None:
    setup = Setup()

    async def run(executor: ThreadPoolExecutor) -> Reply | None:
        reply = await setup.pipeline.dispatch_async(opened(setup, signer().text("slow")), executor)
        await setup.pipeline.drain()
        return reply

    with ThreadPoolExecutor(1, thread_name_prefix="app-pool") as executor:
        assert asyncio.run(run(executor)) is None
    assert setup.receiver.late == [TextReply("echo: slow")]
    assert setup.receiver.threads == ["app-pool_0", "app-pool_0"]


def test_endpoint_keeps_client_deferrer_and_scope() -> None:
    client = WeComClient("wwcorp", "secret")
    deferrer = RecordingDeferrer()
    scope = threading.Lock
    endpoint = Endpoint(
        "/w", WeComCrypto(TOKEN, KEY, CORP_ID), client=client, deferrer=deferrer, scope=scope
    )
    assert (endpoint.client, endpoint.deferrer, endpoint.scope) == (client, deferrer, scope)
    client.close()


def test_a_call_carries_the_pipeline_and_the_endpoint() -> None:
    runner = Runner(1)
    client = WeComClient("wwcorp", "secret")
    endpoint = Endpoint(
        "/wecom",
        WeComCrypto(TOKEN, KEY, CORP_ID),
        receiver=Handlers(),
        client=client,
        scope=threading.Lock,
    )
    setup = Setup(endpoint=endpoint, streams=runner)
    assert Pipeline().streams is not None
    request = signer().text("hi")
    message = parse_message(request.plaintext)
    call = setup.pipeline.call_for(setup.endpoint, message, request.plaintext)
    assert (call.message, call.plaintext, call.endpoint) == (message, request.plaintext, "/wecom")
    assert (call.store, call.streams, call.client, call.scope) == (
        setup.pipeline.store,
        runner,
        client,
        threading.Lock,
    )
    assert opened(setup, request).remote == "?"
    client.close()


def test_dedup_keys_are_the_endpoints_hmac() -> None:
    """Keyed per endpoint by a secret derived from its (newest) EncodingAESKey."""
    setup = Setup()
    request = signer().text("hi")
    setup.send(request)
    crypto = setup.endpoint.credentials[0]
    key = dedup_key(
        "/wecom", parse_message(request.plaintext), request.plaintext, crypto.derive_key(b"dedup")
    )
    assert setup.pipeline.store.get(key) is not None


@pytest.mark.parametrize(
    ("timestamp", "message"),
    [
        ("9" * 12, "timestamp outside the replay window"),
        ("9" * 13, "timestamp is missing or not whole seconds"),
    ],
    ids=["12-digits-read", "13-digits-refused-unread"],
)
def test_a_timestamp_has_at_most_twelve_digits(setup: Setup, timestamp: str, message: str) -> None:
    request = signer().text("t")
    with pytest.raises(TimestampError, match=f"^{message}$"):
        setup.pipeline.check_query("POST", query_of(request, timestamp=timestamp))


@pytest.mark.parametrize(
    ("ids", "document"),
    [
        pytest.param(["", CORP_ID], {"FromUserName": ""}, id="empty-sender-is-no-reply"),
        pytest.param([""], {"FromUserName": "u", "To": "wwx"}, id="no-ids-no-to-check"),
    ],
)
def test_check_direction_ignores_the_empty_receive_id(
    ids: list[str], document: dict[str, str]
) -> None:
    endpoint = Endpoint("/w", WeComCrypto(TOKEN, KEY, ids))
    to_user = document.pop("To", CORP_ID)
    check_direction(
        endpoint, parse_message(app_message_xml("text", document, to_user=to_user).encode())
    )


def test_background_work_cancelled_at_shutdown_is_drained_quietly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A loop shutting down cancels the handlers still running past the deadline: draining
    then neither raises nor logs, and nothing is delivered."""
    setup = Setup()

    async def run() -> None:
        assert await setup.pipeline.dispatch_async(opened(setup, signer().text("slow"))) is None
        for work in list(setup.pipeline._background):
            work.cancel()
        await setup.pipeline.drain()

    with caplog.at_level(logging.ERROR):
        asyncio.run(run())
    assert caplog.records == []
    assert setup.receiver.late == []
