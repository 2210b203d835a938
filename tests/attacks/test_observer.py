"""An observer who sees the traffic, without the Token or the EncodingAESKey (issue 19).

Each finding of the review is a row here, in process through the Flask extension (the same
pipeline serves every adapter; the gunicorn rows live in test_attacks.py):

* the URL check as a decryption oracle (a captured callback or reply sent as ``echostr``);
* a reply posted back as a callback (one hop; a chain cannot start);
* one answer for every failure after the signature (no padding or receive-id oracle);
* endpoints apart: AgentID, a shared credential set, one bot's stream read by another;
* retries waiting for a running first arrival: at most one waits;
* receive ids per method for suites (issue 15).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

import pytest
from flask import Flask
from werkzeug.test import Client

from flask_wecom import AIBot, WeCom, WeComSuite
from flask_wecom.envelope import extract_encrypted
from flask_wecom.messages import Message
from flask_wecom.replies import StreamReply
from flask_wecom.testing import CallbackSigner, SignedRequest, aibot_payload
from harness.forge import CORP_ID, KEY, MARKER, TOKEN, encrypt_raw, frame, pad, signed_post

#: The body every refusal after the signature check gets, whatever failed.
UNIFORM = b"parse (-40002): the callback could not be decrypted or read; the server log names"


def make_app(**config: Any) -> Flask:
    app = Flask(__name__)
    app.config.update(
        WECOM_TOKEN=TOKEN, WECOM_ENCODING_AES_KEY=KEY, WECOM_CORP_ID=CORP_ID, **config
    )
    return app


@pytest.fixture
def runs() -> list[str]:
    return []


@pytest.fixture
def echo_app(runs: list[str]) -> Flask:
    app = make_app()
    wecom = WeCom(app)

    @wecom.message("text")
    def echo(message: Message) -> str:
        runs.append(message.content or "")
        return f"echo: {message.content}"

    return app


@pytest.fixture
def signer() -> CallbackSigner:
    return CallbackSigner(TOKEN, KEY, CORP_ID)


def post(client: Client, request: SignedRequest, path: str = "/wecom") -> tuple[int, bytes]:
    response = client.post(request.url(path), data=request.body)
    return response.status_code, response.get_data()


def get(client: Client, query: dict[str, str], path: str = "/wecom") -> tuple[int, bytes]:
    response = client.get(path, query_string=query)
    return response.status_code, response.get_data()


def reply_fields(body: bytes) -> dict[str, str]:
    """The signed fields of a reply envelope (XML or JSON)."""
    if body.lstrip().startswith(b"{"):
        document = json.loads(body)
        return {
            "msg_signature": document["msgsignature"],
            "timestamp": str(document["timestamp"]),
            "nonce": document["nonce"],
        }
    from flask_wecom.safe_xml import parse_xml

    root = parse_xml(body)
    return {
        "msg_signature": root.findtext("MsgSignature") or "",
        "timestamp": root.findtext("TimeStamp") or "",
        "nonce": root.findtext("Nonce") or "",
    }


# -- the URL check is no decryption oracle -------------------------------------------------------


def captured_callback(client: Client, signer: CallbackSigner) -> dict[str, str]:
    request = signer.text(f"{MARKER} my salary is 12345")
    query = dict(pair.split("=", 1) for pair in request.query_string.split("&"))
    return {**query, "echostr": extract_encrypted(request.body)}


def captured_reply(client: Client, signer: CallbackSigner) -> dict[str, str]:
    request = signer.text(f"{MARKER} my salary is 12345")
    status, body = post(client, request)
    assert status == 200 and body
    return {**reply_fields(body), "echostr": extract_encrypted(body)}


@pytest.mark.parametrize("capture", [captured_callback, captured_reply], ids=["callback", "reply"])
def test_a_captured_message_sent_as_echostr_is_not_decrypted(
    echo_app: Flask,
    signer: CallbackSigner,
    capture: Callable[[Client, CallbackSigner], dict[str, str]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = Client(echo_app)
    status, body = get(client, capture(client, signer))
    assert (status, body[: len(UNIFORM)]) == (400, UNIFORM)
    assert MARKER.encode() not in body and MARKER not in caplog.text
    assert "not_a_callback" in caplog.text  # the log says why: it is no echostr


def test_a_genuine_url_check_still_works_and_can_be_turned_off(signer: CallbackSigner) -> None:
    assert (
        Client(_app_with()).get(signer.verification("1288432023552776189").url("/wecom")).get_data()
        == b"1288432023552776189"
    )
    off = _app_with(WECOM_URL_CHECK="false")
    refused = Client(off).get(signer.verification("42").url("/wecom"))
    assert refused.status_code == 405 and b"URL verification is turned off" in refused.get_data()
    assert post(Client(off), signer.text("hi"))[0] == 200


def _app_with(**config: Any) -> Flask:
    app = make_app(**config)
    WeCom(app).default(lambda m: "ok")
    return app


# -- a reply posted back is no callback ----------------------------------------------------------


def test_a_reply_posted_back_is_refused(
    echo_app: Flask, signer: CallbackSigner, runs: list[str]
) -> None:
    client = Client(echo_app)
    status, reply = post(client, signer.text("hop"))
    assert status == 200 and runs == ["hop"]
    fields = reply_fields(reply)
    bounced = signer.with_ciphertext(
        extract_encrypted(reply), timestamp=fields["timestamp"], nonce=fields["nonce"]
    )
    bounced = replace(
        bounced,
        query_string=f"msg_signature={fields['msg_signature']}&timestamp={fields['timestamp']}"
        f"&nonce={fields['nonce']}",
    )
    status, body = post(client, bounced)
    assert (status, body[: len(UNIFORM)]) == (400, UNIFORM)
    assert runs == ["hop"]  # the handler never ran on the server's own words: no chain


def test_a_stream_reply_posted_back_is_refused() -> None:
    app = make_app(WECOM_AIBOT_TOKEN=TOKEN, WECOM_AIBOT_ENCODING_AES_KEY=KEY)
    AIBot(app).message("text")(lambda m: iter(["a", "b"]))
    bot_signer = CallbackSigner(TOKEN, KEY, "", format="json")
    client = Client(app)
    status, reply = post(
        client,
        bot_signer.callback(aibot_payload("text", {"text": {"content": "x"}}, msgid="m1")),
        "/aibot",
    )
    assert status == 200
    fields = reply_fields(reply)
    bounced = replace(
        bot_signer.with_ciphertext(extract_encrypted(reply), format="json"),
        query_string=f"msg_signature={fields['msg_signature']}&timestamp={fields['timestamp']}"
        f"&nonce={fields['nonce']}",
    )
    status, body = post(client, bounced, "/aibot")
    assert (status, body[: len(UNIFORM)]) == (400, UNIFORM)


# -- one answer after the signature: no padding, length or receive-id oracle ---------------------

DOCUMENT = (
    f"<xml><ToUserName>{CORP_ID}</ToUserName><FromUserName>u</FromUserName>"
    f"<MsgType>text</MsgType><Content>{MARKER}</Content><MsgId>1</MsgId></xml>"
).encode()

AFTER_SIGNATURE = [
    pytest.param(signed_post(encrypt_raw(frame(DOCUMENT) + b"\x00" * 16)), id="padding-zero"),
    pytest.param(signed_post(encrypt_raw(pad(frame(DOCUMENT))[:-1] + b"\x40")), id="padding-64"),
    pytest.param(signed_post(encrypt_raw(pad(frame(DOCUMENT, length=10**6)))), id="length-lies"),
    pytest.param(signed_post(encrypt_raw(pad(frame(DOCUMENT, "ww-other")))), id="receive-id"),
    pytest.param(signed_post("bm90IGEgYmxvY2s="), id="not-whole-blocks"),
    pytest.param(signed_post("!!!!" * 8), id="base64"),
    pytest.param(signed_post(encrypt_raw(pad(frame(b"<xml><unclosed></xml>")))), id="not-xml"),
    pytest.param(
        signed_post(
            encrypt_raw(
                pad(
                    frame(DOCUMENT.replace(b"<FromUserName>u", f"<FromUserName>{CORP_ID}".encode()))
                )
            )
        ),
        id="reply-direction",
    ),
]


@pytest.mark.parametrize("request_", AFTER_SIGNATURE)
def test_every_failure_after_the_signature_gets_one_answer(
    echo_app: Flask, request_: SignedRequest, caplog: pytest.LogCaptureFixture, runs: list[str]
) -> None:
    status, body = post(Client(echo_app), request_)
    assert (status, body) == (400, UNIFORM + b" the cause\n")
    assert runs == [] and MARKER not in caplog.text
    assert len(caplog.records) == 1  # the one log line keeps the specific reason


# -- endpoints apart --------------------------------------------------------------------------


def test_an_agent_refuses_another_agents_callback(caplog: pytest.LogCaptureFixture) -> None:
    """Two agents of one corp, one callback Token and key: the AgentID keeps them apart."""
    app = make_app(WECOM_AGENT_ID="1000001", WECOM_SALES_AGENT_ID="1000002")
    sales_config = {
        "WECOM_SALES_" + k: v
        for k, v in (
            ("TOKEN", TOKEN),
            ("ENCODING_AES_KEY", KEY),
            ("CORP_ID", CORP_ID),
            ("PATH", "/sales"),
        )
    }
    app.config.update(sales_config)
    ran: list[str] = []
    WeCom(app).default(lambda m: ran.append("support") or None)
    WeCom(app, name="sales", config_prefix="WECOM_SALES_").default(
        lambda m: ran.append("sales") or None
    )
    signer = CallbackSigner(TOKEN, KEY, CORP_ID)
    to_sales = signer.message("text", {"Content": "a", "AgentID": 1000002})
    assert post(Client(app), to_sales, "/wecom")[0] == 400
    assert post(Client(app), to_sales, "/sales")[0] == 200
    assert ran == ["sales"]


def test_endpoints_sharing_credentials_without_agent_ids_are_warned_about(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = make_app(
        WECOM_OTHER_TOKEN=TOKEN, WECOM_OTHER_ENCODING_AES_KEY=KEY, WECOM_OTHER_CORP_ID=CORP_ID
    )
    WeCom(app)
    WeCom(app, name="other", config_prefix="WECOM_OTHER_", path="/other")
    assert "share a credential set" in caplog.text


def test_one_bot_cannot_read_another_bots_stream() -> None:
    app = make_app(
        WECOM_AIBOT_TOKEN=TOKEN,
        WECOM_AIBOT_ENCODING_AES_KEY=KEY,
        WECOM_BOT2_TOKEN=TOKEN,
        WECOM_BOT2_ENCODING_AES_KEY=KEY,
    )
    release = threading.Event()

    def secret_stream(message: Message) -> Iterator[str]:
        yield f"{MARKER} secret answer"
        release.wait(5)

    AIBot(app).message("text")(secret_stream)
    AIBot(app, name="bot2", config_prefix="WECOM_BOT2_", path="/bot2")
    bot_signer = CallbackSigner(TOKEN, KEY, "", format="json")
    client = Client(app)
    first = bot_signer.callback(aibot_payload("text", {"text": {"content": "q"}}, msgid="q1"))
    _, body = post(client, first, "/aibot")
    stream_id = bot_signer.open_reply(body, first).id  # type: ignore[union-attr]
    refresh = aibot_payload("stream", {"stream": {"id": stream_id}}, msgid="r1")
    time.sleep(0.2)
    try:
        own = bot_signer.open_reply(post(client, bot_signer.callback(refresh), "/aibot")[1])
        other = bot_signer.open_reply(post(client, bot_signer.callback(refresh), "/bot2")[1])
    finally:
        release.set()
    assert isinstance(own, StreamReply) and MARKER in own.content
    assert other == StreamReply(stream_id, "", finish=True)  # an unknown id there


# -- retries waiting for a running first arrival ---------------------------------------------


def test_only_one_retry_waits_for_a_running_handler(signer: CallbackSigner) -> None:
    app = make_app(WECOM_DEADLINE=0)
    started, release = threading.Event(), threading.Event()

    @WeCom(app).message("text")
    def slow(message: Message) -> str:
        started.set()
        release.wait(5)
        return "done"

    client = Client(app)
    first = signer.text("slow")
    with ThreadPoolExecutor(4) as pool:
        running = pool.submit(post, client, first)
        assert started.wait(5)
        began = time.monotonic()
        retries = [pool.submit(timed_post, client, signer.resend(first)) for _ in range(3)]
        quick = [r.result() for r in retries if r.result()[1] < 1.0]
        elapsed = time.monotonic() - began
        release.set()
        assert running.result()[0] == 200
    # Two are answered empty at once; the third waits for the first (or its own wait ends).
    assert len(quick) >= 2 and all(answer == (200, b"") for answer, _ in quick)
    assert elapsed < 6


def timed_post(client: Client, request: SignedRequest) -> tuple[tuple[int, bytes], float]:
    started = time.monotonic()
    answer = post(client, request)
    return answer, time.monotonic() - started


# -- suites: each receive id only for its method (issue 15) -------------------------------------

SUITE_ID = "ww-suite-id"


@pytest.mark.parametrize(
    ("method", "receive_id", "status"),
    [
        pytest.param("GET", CORP_ID, 200, id="get-provider-corp-id"),
        pytest.param("GET", SUITE_ID, 400, id="get-suite-id-refused"),
        pytest.param("POST", SUITE_ID, 200, id="post-suite-id"),
        pytest.param("POST", CORP_ID, 400, id="post-provider-corp-id-refused"),
    ],
)
def test_suite_receive_ids_per_method(method: str, receive_id: str, status: int) -> None:
    app = Flask(__name__)
    app.config.update(
        WECOM_SUITE_TOKEN=TOKEN,
        WECOM_SUITE_ENCODING_AES_KEY=KEY,
        WECOM_SUITE_CORP_ID=CORP_ID,
        WECOM_SUITE_SUITE_ID=SUITE_ID,
    )
    suite = WeComSuite(app)
    signer = CallbackSigner(TOKEN, KEY, receive_id)
    ticket = (
        f"<xml><SuiteId>{SUITE_ID}</SuiteId><InfoType>suite_ticket</InfoType>"
        f"<TimeStamp>1</TimeStamp><SuiteTicket>t-{receive_id}</SuiteTicket></xml>"
    )
    request = signer.verification("77") if method == "GET" else signer.callback(ticket)
    response = Client(app).open(request.url("/suite"), method=method, data=request.body)
    assert response.status_code == status
    if method == "POST":
        with app.app_context():
            assert suite.suite_ticket() == ("t-" + SUITE_ID if status == 200 else None)
