"""flask_wecom.testing, checked against the crypto core and against an independent implementation.

The independent code below (SHA-1 from hashlib, AES-CBC from pycryptodome, PKCS#7 to 32-byte
blocks and the framing written out by hand) shares nothing with flask_wecom.crypto, so the
test kit cannot share a bug with the core it is used to test.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import string
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import unquote

import pytest
from Crypto.Cipher import AES

from flask_wecom.crypto import WeComCrypto
from flask_wecom.errors import ParseError, ReceiveIdError, SignatureError
from flask_wecom.messages import Message, TextMessage, parse_message
from flask_wecom.middleware import Endpoint, WeComMiddleware
from flask_wecom.replies import StreamReply, TextReply
from flask_wecom.testing import (
    CallbackSigner,
    Credentials,
    SignedRequest,
    WeComTestClient,
    generate_encoding_aes_key,
    generate_token,
)
from tests.support.vectors import CORP_ID, KEY, TOKEN, load

NOW = 1_700_000_000
PREFIX = b"0123456789abcdef"
PLAINTEXT = "<xml><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[hi]]></Content></xml>"

# -- the independent implementation ----------------------------------------------------------


def independent_signature(token: str, timestamp: str, nonce: str, encrypted: str) -> str:
    return hashlib.sha1("".join(sorted([token, timestamp, nonce, encrypted])).encode()).hexdigest()


def independent_cipher(encoding_aes_key: str) -> Any:
    key = base64.b64decode(encoding_aes_key + "=")
    assert len(key) == 32
    return AES.new(key, AES.MODE_CBC, key[:16])


def independent_decrypt(encoding_aes_key: str, encrypted: str) -> tuple[bytes, str]:
    """The message and receive id inside a ciphertext."""
    padded = independent_cipher(encoding_aes_key).decrypt(base64.b64decode(encrypted))
    pad = padded[-1]
    assert 1 <= pad <= 32 and padded[-pad:] == bytes([pad]) * pad
    framed = padded[:-pad]
    length = int.from_bytes(framed[16:20], "big")
    return framed[20 : 20 + length], framed[20 + length :].decode()


def independent_encrypt(
    encoding_aes_key: str, message: bytes, receive_id: str, prefix: bytes = PREFIX
) -> str:
    framed = prefix + len(message).to_bytes(4, "big") + message + receive_id.encode()
    pad = 32 - len(framed) % 32
    padded = framed + bytes([pad]) * pad
    return base64.b64encode(independent_cipher(encoding_aes_key).encrypt(padded)).decode()


def independent_reply_envelope(
    message: str, nonce: str, *, json_format: bool = False, receive_id: str = CORP_ID
) -> bytes:
    """A passive-reply envelope written by hand, as the official library writes it."""
    encrypted = independent_encrypt(KEY, message.encode(), receive_id)
    signature = independent_signature(TOKEN, str(NOW), nonce, encrypted)
    if json_format:
        fields = {"encrypt": encrypted, "msgsignature": signature, "timestamp": NOW, "nonce": nonce}
        return json.dumps(fields).encode()
    return (
        f"<xml><Encrypt><![CDATA[{encrypted}]]></Encrypt>"
        f"<MsgSignature><![CDATA[{signature}]]></MsgSignature>"
        f"<TimeStamp>{NOW}</TimeStamp><Nonce><![CDATA[{nonce}]]></Nonce></xml>"
    ).encode()


def query_of(request: SignedRequest) -> dict[str, str]:
    """The query parameters, checking that '+', '/' and '=' are percent-encoded as WeCom does."""
    assert not set("+/ ") & set(request.query_string)
    pairs = [pair.split("=", 1) for pair in request.query_string.split("&")]
    assert all("=" not in value for _, value in pairs)
    return {name: unquote(value) for name, value in pairs}


def ciphertext_of(request: SignedRequest) -> str:
    """The echostr (GET) or the envelope's ciphertext (POST), read without flask_wecom."""
    if request.method == "GET":
        return query_of(request)["echostr"]
    if request.format == "json":
        encrypted: str = json.loads(request.body)["encrypt"]
        return encrypted
    found = re.fullmatch(
        rb"<xml><ToUserName>.*</ToUserName><Encrypt><!\[CDATA\[([A-Za-z0-9+/=]+)\]\]></Encrypt>"
        rb"<AgentID>.*</AgentID></xml>",
        request.body,
    )
    assert found, request.body
    return found.group(1).decode()


def fields_of(request: SignedRequest) -> dict[str, object]:
    """Every field a callback carries, decoded independently."""
    query = query_of(request)
    message, receive_id = independent_decrypt(KEY, ciphertext_of(request))
    return {
        "msg_signature": query["msg_signature"],
        "timestamp": query["timestamp"],
        "nonce": query["nonce"],
        "ciphertext": ciphertext_of(request),
        "message": message,
        "receive_id": receive_id,
    }


def signature_is_valid(request: SignedRequest) -> bool:
    query = query_of(request)
    expected = independent_signature(
        TOKEN, query["timestamp"], query["nonce"], ciphertext_of(request)
    )
    return query["msg_signature"] == expected


@pytest.fixture
def signer() -> CallbackSigner:
    return CallbackSigner(TOKEN, KEY, CORP_ID, clock=lambda: NOW)


@pytest.fixture
def pinned_signer() -> CallbackSigner:
    """A signer whose ciphertexts are reproducible: fixed clock and random prefix."""
    return CallbackSigner(TOKEN, KEY, CORP_ID, clock=lambda: NOW, random_bytes=lambda n: PREFIX)


# -- known answers ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "vector",
    [
        pytest.param(v, id=f"{name}{i}-{v['kind']}")
        for name in ("public", "aibot")
        for i, v in enumerate(load(name), 1)
    ],
)
def test_signer_reproduces_the_official_vectors(vector: dict[str, Any]) -> None:
    prefix = bytes.fromhex(vector["random_prefix_hex"])
    signer = CallbackSigner(
        vector["token"],
        vector["encoding_aes_key"],
        vector["receive_id"],
        random_bytes=lambda n: prefix,
    )
    stamp = {"timestamp": vector["timestamp"], "nonce": vector["nonce"]}
    if vector["kind"] == "verify_url":
        request = signer.verification(vector["expected_plaintext"], **stamp)
        expected_ciphertext = vector["echostr"]
    else:
        request = signer.callback(vector["expected_plaintext"], **stamp)
        expected_ciphertext = vector["encrypt"]
    assert ciphertext_of(request) == expected_ciphertext
    assert query_of(request)["msg_signature"] == vector["msg_signature"]


# -- every builder makes a callback both implementations accept ------------------------------

CAPTURED = (
    "<xml><ToUserName><![CDATA[wx5823bf96d3bd56c7]]></ToUserName>"
    "<FromUserName><![CDATA[lisi]]></FromUserName><CreateTime>1409659813</CreateTime>"
    "<MsgType><![CDATA[location]]></MsgType><Location_X>23.134521</Location_X>"
    "<Location_Y>113.358803</Location_Y><Scale>20</Scale><Label><![CDATA[广州]]></Label>"
    "<MsgId>4561255354251345929</MsgId><AgentID>1</AgentID></xml>"
)


def has(**expected: object) -> Callable[[Message], bool]:
    return lambda message: all(getattr(message, k) == v for k, v in expected.items())


BUILDERS = [
    pytest.param(
        lambda s: s.verification("1616140317555161061"),
        lambda plaintext: plaintext == b"1616140317555161061",
        id="verification",
    ),
    pytest.param(
        lambda s: s.text("你好 ]]> <&>", from_user="lisi"),
        lambda p: has(type="text", content="你好 ]]> <&>", from_user_name="lisi")(parse_message(p)),
        id="text",
    ),
    pytest.param(
        lambda s: s.click("MENU_TODAY"),
        lambda p: has(event="click", event_key="MENU_TODAY")(parse_message(p)),
        id="click",
    ),
    pytest.param(
        lambda s: s.subscribe(from_user="wangwu"),
        lambda p: has(event="subscribe", from_user_name="wangwu")(parse_message(p)),
        id="subscribe",
    ),
    pytest.param(
        lambda s: s.change_contact("delete_user", {"UserID": "lisi"}),
        lambda p: has(event="change_contact", change_type="delete_user", user_id="lisi")(
            parse_message(p)
        ),
        id="change-contact",
    ),
    pytest.param(
        lambda s: s.event("enter_agent", {"EventKey": ""}),
        lambda p: has(event="enter_agent", agent_id=1000002)(parse_message(p)),
        id="event",
    ),
    pytest.param(
        lambda s: s.message("image", {"PicUrl": "https://p/1.png", "MediaId": "m1"}),
        lambda p: has(type="image", media_id="m1")(parse_message(p)),
        id="message",
    ),
    pytest.param(
        lambda s: s.aibot_text("hello bot", chattype="group"),
        lambda p: has(is_aibot=True, content="hello bot", chattype="group")(parse_message(p)),
        id="aibot-text",
    ),
    pytest.param(
        lambda s: s.callback(CAPTURED),
        lambda p: p == CAPTURED.encode(),
        id="plaintext-str",
    ),
    pytest.param(
        lambda s: s.callback(CAPTURED.encode()),
        lambda p: p == CAPTURED.encode(),
        id="plaintext-bytes",
    ),
    pytest.param(
        lambda s: s.callback(parse_message(CAPTURED)),
        lambda p: parse_message(p) == parse_message(CAPTURED),
        id="message-object",
    ),
    pytest.param(
        lambda s: s.callback(CAPTURED, format="json"),
        lambda p: p == CAPTURED.encode(),
        id="json-envelope",
    ),
]


@pytest.mark.parametrize(("build", "check"), BUILDERS)
def test_builders_make_callbacks_both_implementations_accept(
    signer: CallbackSigner,
    build: Callable[[CallbackSigner], SignedRequest],
    check: Callable[[bytes], bool],
) -> None:
    request = build(signer)
    query = query_of(request)
    assert signature_is_valid(request)
    assert query["timestamp"] == request.timestamp == str(NOW)
    assert query["nonce"] == request.nonce
    message, receive_id = independent_decrypt(KEY, ciphertext_of(request))
    assert (message, receive_id) == (request.plaintext, CORP_ID)
    assert check(message)
    core = WeComCrypto(TOKEN, KEY, CORP_ID)
    if request.method == "GET":
        decrypted = core.verify_url(
            query["msg_signature"], query["timestamp"], query["nonce"], query["echostr"]
        ).encode()
        assert (request.body, request.content_type) == (b"", "")
    else:
        decrypted = core.decrypt_message(
            request.body, query["msg_signature"], query["timestamp"], query["nonce"]
        )
        assert (
            request.content_type == {"xml": "text/xml", "json": "application/json"}[request.format]
        )
    assert decrypted == request.plaintext


@pytest.mark.parametrize(
    ("build", "format"),
    [
        pytest.param(lambda s: s.text("hi"), "xml", id="app-text-xml"),
        pytest.param(lambda s: s.aibot_text("hi"), "json", id="aibot-text-json"),
        pytest.param(lambda s: s.aibot_text("hi", format="xml"), "xml", id="aibot-overridden"),
    ],
)
def test_envelope_format(
    signer: CallbackSigner, build: Callable[[CallbackSigner], SignedRequest], format: str
) -> None:
    request = build(signer)
    assert request.format == format
    if format == "json":
        assert set(json.loads(request.body)) == {"encrypt"}
    else:
        assert request.body.startswith(b"<xml><ToUserName><![CDATA[" + CORP_ID.encode())


def test_message_ids_are_fresh_and_exact(signer: CallbackSigner) -> None:
    other = CallbackSigner(TOKEN, KEY, CORP_ID)
    ids = [parse_message(s.text("hi").plaintext).msg_id for s in (signer, signer, other, other)]
    assert len(set(ids)) == 4
    assert all(isinstance(i, str) and 2**53 < int(i) < 2**64 for i in ids)


def test_a_message_without_its_document_is_refused(signer: CallbackSigner) -> None:
    with pytest.raises(ValueError, match="parse_message"):
        signer.callback(TextMessage(type="text", content="hi"))


# -- each override changes exactly its field -------------------------------------------------

OVERRIDES = [
    pytest.param({"signature": "0" * 40}, {"msg_signature"}, SignatureError, id="signature"),
    pytest.param({"timestamp": 1}, {"timestamp", "msg_signature"}, None, id="stale-timestamp"),
    pytest.param({"nonce": "other"}, {"nonce", "msg_signature"}, None, id="nonce"),
    pytest.param(
        {"receive_id": "wxother"},
        {"receive_id", "ciphertext", "msg_signature"},
        ReceiveIdError,
        id="receive-id",
    ),
]


@pytest.mark.parametrize("method", ["GET", "POST"])
@pytest.mark.parametrize(("override", "changed", "core_error"), OVERRIDES)
def test_an_override_changes_exactly_its_field(
    pinned_signer: CallbackSigner,
    method: str,
    override: dict[str, Any],
    changed: set[str],
    core_error: type[Exception] | None,
) -> None:
    def build(**kwargs: Any) -> SignedRequest:
        kwargs = {"nonce": "n0", **kwargs}
        if method == "GET":
            return pinned_signer.verification("4611686018427387904", **kwargs)
        return pinned_signer.callback(PLAINTEXT, **kwargs)

    base, overridden = fields_of(build()), fields_of(request := build(**override))
    assert {name for name in base if base[name] != overridden[name]} == changed
    assert signature_is_valid(request) is ("signature" not in override)
    core = WeComCrypto(TOKEN, KEY, CORP_ID)
    query = query_of(request)
    args = (ciphertext_of(request), query["msg_signature"], query["timestamp"], query["nonce"])
    if core_error is None:
        assert core.verify_and_decrypt(*args).plaintext == request.plaintext
    else:
        with pytest.raises(core_error):
            core.verify_and_decrypt(*args)


@pytest.mark.parametrize(
    "build",
    [
        pytest.param(lambda s, **o: s.text("hi", **o), id="text"),
        pytest.param(lambda s, **o: s.click("K", **o), id="click"),
        pytest.param(lambda s, **o: s.subscribe(**o), id="subscribe"),
        pytest.param(lambda s, **o: s.change_contact("create_user", {}, **o), id="contact"),
        pytest.param(lambda s, **o: s.event("enter_agent", **o), id="event"),
        pytest.param(lambda s, **o: s.aibot_text("hi", **o), id="aibot-text"),
    ],
)
def test_shortcuts_pass_overrides_through(
    signer: CallbackSigner, build: Callable[..., SignedRequest]
) -> None:
    request = build(signer, timestamp=12, nonce="n1", signature="f" * 40, receive_id="wxother")
    fields = fields_of(request)
    assert (fields["msg_signature"], fields["timestamp"], fields["nonce"]) == ("f" * 40, "12", "n1")
    assert fields["receive_id"] == "wxother"


@pytest.mark.parametrize(
    "build",
    [
        pytest.param(lambda s: s.verification(), id="verification"),
        pytest.param(lambda s: s.text("hi"), id="text"),
        pytest.param(lambda s: s.aibot_text("hi"), id="aibot-json"),
    ],
)
def test_resend_is_the_same_plaintext_freshly_signed(
    signer: CallbackSigner, build: Callable[[CallbackSigner], SignedRequest]
) -> None:
    first = build(signer)
    again = signer.resend(first)
    assert (again.method, again.plaintext, again.format) == (
        first.method,
        first.plaintext,
        first.format,
    )
    assert again.nonce != first.nonce
    assert ciphertext_of(again) != ciphertext_of(first)  # a fresh random prefix
    assert signature_is_valid(again)
    assert independent_decrypt(KEY, ciphertext_of(again)) == (first.plaintext, CORP_ID)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        pytest.param("/wecom", "/wecom?q", id="path"),
        pytest.param("http://h/cb?corp=1", "http://h/cb?corp=1&q", id="url-with-query"),
    ],
)
def test_url_appends_the_query(path: str, expected: str) -> None:
    request = SignedRequest("POST", "q", b"", "", b"", "1", "n")
    assert request.url(path) == expected


# -- replies ---------------------------------------------------------------------------------

TEXT_REPLY = (
    "<xml><ToUserName><![CDATA[zhangsan]]></ToUserName><FromUserName><![CDATA[x]]></FromUserName>"
    "<CreateTime>1</CreateTime><MsgType><![CDATA[text]]></MsgType>"
    "<Content><![CDATA[echo: 你好]]></Content></xml>"
)
STREAM_REPLY = '{"msgtype":"stream","stream":{"id":"s1","finish":true,"content":"done"}}'


@pytest.mark.parametrize(
    ("plaintext", "json_format", "expected"),
    [
        pytest.param(TEXT_REPLY, False, TextReply("echo: 你好"), id="xml-text"),
        pytest.param(
            STREAM_REPLY, True, StreamReply(id="s1", content="done", finish=True), id="json-stream"
        ),
    ],
)
def test_open_reply_reads_an_independently_encrypted_reply(
    signer: CallbackSigner, plaintext: str, json_format: bool, expected: object
) -> None:
    request = signer.text("hi", nonce="reply-nonce")
    body = independent_reply_envelope(plaintext, "reply-nonce", json_format=json_format)
    assert signer.decrypt_reply(body, request) == plaintext.encode()
    assert signer.open_reply(body, request) == expected
    assert signer.open_reply(body) == expected  # checks the envelope's own signature only


def test_the_empty_reply_is_none(signer: CallbackSigner) -> None:
    assert signer.open_reply(b"", signer.text("hi")) is None


@pytest.mark.parametrize(
    ("body", "error"),
    [
        pytest.param(
            independent_reply_envelope(TEXT_REPLY, "another-nonce"), SignatureError, id="nonce"
        ),
        pytest.param(
            independent_reply_envelope(TEXT_REPLY, "reply-nonce").replace(
                b"<TimeStamp>1", b"<TimeStamp>2"
            ),
            SignatureError,
            id="tampered",
        ),
        pytest.param(
            independent_reply_envelope(TEXT_REPLY, "reply-nonce", receive_id="wxother"),
            ReceiveIdError,
            id="receive-id",
        ),
        pytest.param(b"<xml><Content>plain</Content></xml>", ParseError, id="not-an-envelope"),
    ],
)
def test_bad_replies_are_refused(
    signer: CallbackSigner, body: bytes, error: type[Exception]
) -> None:
    with pytest.raises(error):
        signer.open_reply(body, signer.text("hi", nonce="reply-nonce"))


# -- the test client, on a WSGI app with no framework ----------------------------------------


def echo_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """Echo texts (as TextReply or an AI-bot stream), answer events with nothing."""
    message = environ["wecom.message"]
    if message.is_aibot:
        reply = StreamReply(id="s1", content=f"echo: {message.content}", finish=True)
        body = reply.render(message).encode()
    elif message.type == "text":
        body = TextReply(f"echo: {message.content}").render(message).encode()
    else:
        body = b""
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body]


@pytest.fixture
def wsgi_app() -> WeComMiddleware:
    """The echo app behind the middleware: an app endpoint at /wecom, an AI bot at /bot."""
    return WeComMiddleware(
        echo_app,
        WeComCrypto(TOKEN, KEY, CORP_ID),
        endpoints=[Endpoint("/bot", WeComCrypto(TOKEN, KEY, ""), "json")],
        clock=lambda: NOW,
    )


@pytest.fixture
def client(wsgi_app: WeComMiddleware, signer: CallbackSigner) -> WeComTestClient:
    return WeComTestClient(wsgi_app, signer)


@pytest.mark.parametrize(
    ("send", "status", "reply"),
    [
        pytest.param(lambda c: c.send_text("hi"), 200, TextReply("echo: hi"), id="text"),
        pytest.param(lambda c: c.click("K"), 200, None, id="click"),
        pytest.param(lambda c: c.subscribe(), 200, None, id="subscribe"),
        pytest.param(lambda c: c.send_event("enter_agent"), 200, None, id="event"),
        pytest.param(
            lambda c: c.change_contact("delete_user", {"UserID": "lisi"}), 200, None, id="contact"
        ),
        pytest.param(
            lambda c: c.send_message(parse_message(CAPTURED)), 200, None, id="message-object"
        ),
        pytest.param(
            lambda c: c.send_text("hi", signature="0" * 40), 403, None, id="forged-signature"
        ),
        pytest.param(lambda c: c.send_text("hi", timestamp=1), 403, None, id="stale-timestamp"),
        pytest.param(lambda c: c.send_text("hi", receive_id="wxo"), 400, None, id="receive-id"),
    ],
)
def test_client_round_trips(
    client: WeComTestClient,
    send: Callable[[WeComTestClient], Any],
    status: int,
    reply: object,
) -> None:
    response = send(client)
    assert (response.status, response.reply) == (status, reply)
    if status != 200:
        assert response.plaintext is None


def test_client_verifies_the_url(client: WeComTestClient) -> None:
    response = client.verify_url("1288432023552776189")
    assert (response.status, response.body, response.reply) == (200, b"1288432023552776189", None)


def test_client_talks_to_an_ai_bot_endpoint(wsgi_app: WeComMiddleware) -> None:
    bot = WeComTestClient(wsgi_app, CallbackSigner(TOKEN, KEY, "", clock=lambda: NOW), "/bot")
    response = bot.aibot_text("hi")
    assert response.reply == StreamReply(id="s1", content="echo: hi", finish=True)
    assert json.loads(response.body).keys() == {"encrypt", "msgsignature", "timestamp", "nonce"}


# -- credentials -----------------------------------------------------------------------------


def test_generated_credentials_are_well_formed_and_fresh() -> None:
    first, second = Credentials.generate(), Credentials.generate()
    for credentials in (first, second):
        assert re.fullmatch("[A-Za-z0-9]{32}", credentials.token)
        assert re.fullmatch("[A-Za-z0-9]{43}", credentials.encoding_aes_key)
        assert len(base64.b64decode(credentials.encoding_aes_key + "=")) == 32
        assert re.fullmatch("ww[0-9a-f]{16}", credentials.receive_id)
    assert first.token != second.token
    assert first.encoding_aes_key != second.encoding_aes_key
    assert first.receive_id != second.receive_id
    assert generate_token() != generate_token()
    assert set(generate_encoding_aes_key()) <= set(string.ascii_letters + string.digits)


def test_credentials_config_signer_and_repr() -> None:
    credentials = Credentials.generate(receive_id="")
    assert credentials.config == {
        "WECOM_TOKEN": credentials.token,
        "WECOM_ENCODING_AES_KEY": credentials.encoding_aes_key,
        "WECOM_CORP_ID": "",
    }
    assert credentials.token not in repr(credentials)
    assert credentials.encoding_aes_key not in repr(credentials)
    request = credentials.signer().aibot_text("hi")
    core = WeComCrypto(credentials.token, credentials.encoding_aes_key, "")
    query = query_of(request)
    assert (
        core.decrypt_message(
            request.body, query["msg_signature"], query["timestamp"], query["nonce"]
        )
        == request.plaintext
    )
