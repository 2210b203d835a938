"""Property-based fuzzing of everything the network reaches, and the crashes it found.

Invariant: every input ends in a typed refusal (400, 403, 405, 413), a correct answer (200), or,
on other paths, the wrapped app's own answer; never a 500, an escaping exception or a hang.

The parsers are fuzzed one by one (envelopes, base64, padding and length prefix, plaintext
documents), then the whole request path through werkzeug's test client: arbitrary requests,
validly signed garbage ciphertexts, and valid encryptions of arbitrary plaintexts.

Runs are derandomized, so CI sees the same examples every time. For a longer, random search::

    WECOM_FUZZ_EXAMPLES=20000 .venv/bin/python -m pytest tests/test_fuzz.py

``bench/fuzz_middleware.py`` is the coverage-guided (atheris) counterpart.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from types import FrameType
from typing import Any

import pytest
from Crypto.Cipher import AES
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from werkzeug.test import Client, EnvironBuilder
from werkzeug.wrappers import Request

from flask_wecom import WeCom
from flask_wecom.cli import main as cli_main
from flask_wecom.crypto import WeComCrypto, decode_aes_key
from flask_wecom.envelope import EnvelopeFormat, extract_encrypted, read_reply_envelope
from flask_wecom.errors import DecryptError, ParseError, ReplyError, WeComError
from flask_wecom.messages import Message, parse_message
from flask_wecom.pipeline import Endpoint, check_direction
from flask_wecom.replies import TextReply
from flask_wecom.safe_xml import parse_xml
from flask_wecom.testing import CallbackSigner, SignedRequest
from harness.forge import CORP_ID, KEY, TOKEN, encrypt_raw, frame, pad, signed_post

EXAMPLES = int(os.environ.get("WECOM_FUZZ_EXAMPLES", "0"))
FUZZ = settings(
    max_examples=EXAMPLES or 150,
    derandomize=not EXAMPLES,
    deadline=None,  # hangs are caught by `no_hang`, not by hypothesis' timing
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
#: Longest any single request may take before it counts as a hang, seconds.
HANG = 5

REFUSALS = {400, 403, 405, 413}
#: Flask's own answers on paths the middleware does not own: OPTIONS, slash redirects, 404, 405.
PASS_THROUGH = {200, 308, 404, 405}


def fuzz_app(*, dedup: bool) -> Flask:
    """The request path under test: the extension (middleware, router, replies) on Flask."""
    app = Flask(__name__)
    wecom = WeCom(app, token=TOKEN, encoding_aes_key=KEY, corp_id=CORP_ID, dedup=dedup)

    @wecom.message("text")
    def echo(message: Message) -> str:
        return f"echo: {message.content}"

    return app  # anything else gets the extension's default: an empty 200


#: With retry dedup, as deployed; without it, so each answer depends on its own request only.
CLIENT = Client(fuzz_app(dedup=True))
ORACLE_CLIENT = Client(fuzz_app(dedup=False))
SIGNER = CallbackSigner(TOKEN, KEY, CORP_ID)
CRYPTO = WeComCrypto(TOKEN, KEY, [CORP_ID, ""])
ENDPOINT = Endpoint("/wecom", WeComCrypto(TOKEN, KEY, CORP_ID))
AES_KEY = decode_aes_key(KEY)


@contextmanager
def no_hang(seconds: int = HANG) -> Iterator[None]:
    """Fail instead of waiting forever."""

    def expire(signum: int, frame: FrameType | None) -> None:
        raise TimeoutError(f"no answer within {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def post(client: Client, request: SignedRequest) -> Any:
    with no_hang():
        return client.post(
            request.url("/wecom"),
            data=request.body,
            headers={"Content-Type": request.content_type},
        )


# -- strategies ---------------------------------------------------------------------------------

latin1 = st.text(st.characters(max_codepoint=255), max_size=60)
#: Names the parsers look for, so random documents often hit the typed fields.
FIELDS = [
    "ToUserName",
    "FromUserName",
    "CreateTime",
    "MsgType",
    "Content",
    "MsgId",
    "AgentID",
    "Event",
    "EventKey",
    "ChangeType",
    "InfoType",
    "Encrypt",
    "msgtype",
    "text",
    "event",
]
xml_name = st.sampled_from(FIELDS) | st.from_regex(r"[A-Za-z_][A-Za-z0-9_.-]{0,12}", fullmatch=True)
xml_text = st.text(st.characters(blacklist_categories=["Cs", "Cc"]), max_size=40)
json_keys = st.sampled_from(FIELDS) | st.text(max_size=8)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(json_keys, inner, max_size=5),
    max_leaves=20,
)


def _cdata(text: str) -> str:
    return "<![CDATA[" + text.replace("]]>", "]]]]><![CDATA[>") + "]]>"


@st.composite
def xml_elements(draw: st.DrawFn, depth: int = 0) -> str:
    """A random, mostly well-formed element: text, CDATA, a number, or children."""
    name = draw(xml_name)
    kind = draw(st.sampled_from(["text", "cdata", "int", "children"] if depth < 3 else ["text"]))
    if kind == "children":
        inner = "".join(draw(st.lists(xml_elements(depth + 1), max_size=4)))
    elif kind == "cdata":
        inner = _cdata(draw(xml_text))
    elif kind == "int":
        inner = str(draw(st.integers(-(2**70), 2**70)))
    else:
        inner = draw(xml_text).replace("&", "&amp;").replace("<", "&lt;")
    return f"<{name}>{inner}</{name}>"


xml_documents = st.builds(
    lambda items: "<xml>" + "".join(items) + "</xml>", st.lists(xml_elements(), max_size=8)
)
json_documents = st.dictionaries(json_keys, json_values, max_size=8).map(json.dumps)
#: Real callback plaintexts, as seeds to mutate.
SEEDS = [
    SIGNER.text("hello").plaintext,
    SIGNER.click("MENU_VOTE_PIZZA").plaintext,
    SIGNER.subscribe().plaintext,
    SIGNER.change_contact("update_user", {"UserID": "lisi", "NewUserID": "lisi2"}).plaintext,
    SIGNER.aibot_text("hi").plaintext,
]


@st.composite
def mutated(draw: st.DrawFn, seeds: list[bytes] = SEEDS) -> bytes:
    """A seed with one slice replaced by random bytes."""
    seed = draw(st.sampled_from(seeds))
    start = draw(st.integers(0, len(seed)))
    end = draw(st.integers(start, len(seed)))
    return seed[:start] + draw(st.binary(max_size=12)) + seed[end:]


plaintexts = st.one_of(
    st.binary(max_size=200),
    xml_documents.map(str.encode),
    json_documents.map(str.encode),
    mutated(),
    st.sampled_from(SEEDS),
)


# -- parsers, one by one ------------------------------------------------------------------------


@FUZZ
@given(st.binary(max_size=400) | xml_documents.map(str.encode) | json_documents.map(str.encode))
def test_extract_encrypted_returns_text_or_parse_error(body: bytes) -> None:
    try:
        value = extract_encrypted(body)
    except ParseError:
        return
    assert isinstance(value, str) and value


@FUZZ
@given(st.binary(max_size=400) | xml_documents.map(str.encode) | json_documents.map(str.encode))
def test_read_reply_envelope_returns_fields_or_parse_error(body: bytes) -> None:
    try:
        envelope = read_reply_envelope(body)
    except ParseError:
        return
    assert envelope.encrypted and envelope.signature


@FUZZ
@given(st.binary(max_size=400) | xml_documents.map(str.encode) | json_documents.map(str.encode))
def test_cli_decrypt_of_any_capture_exits_cleanly(body: bytes) -> None:
    """``flask-wecom decrypt`` on any captured body: exit 0 or 1, never an exception."""
    stdin = sys.stdin
    sys.stdin = io.TextIOWrapper(io.BytesIO(body))
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            code = cli_main(["decrypt", "--token", TOKEN, "--key", KEY, "--corp-id", CORP_ID, "-"])
    finally:
        sys.stdin = stdin
    assert code in (0, 1) if body else code == 2


@FUZZ
@given(
    fields=st.lists(xml_elements(), max_size=4),
    encrypt=st.text(max_size=40) | st.from_regex(r"[A-Za-z0-9+/]{4,40}={0,2}", fullmatch=True),
    wrap=st.sampled_from(["cdata", "plain"]),
    spaces=st.sampled_from(["", " ", "\n", "\r\n\t"]),
)
def test_envelope_fast_path_agrees_with_lxml(
    fields: list[str], encrypt: str, wrap: str, spaces: str
) -> None:
    """The regex fast path for flat envelopes reads exactly what the hardened parser reads."""
    inner = (
        _cdata(encrypt) if wrap == "cdata" else encrypt.replace("&", "&amp;").replace("<", "&lt;")
    )
    half = len(fields) // 2
    body = (
        spaces
        + "<xml>"
        + spaces
        + spaces.join(fields[:half])
        + f"<Encrypt>{inner}</Encrypt>"
        + spaces.join(fields[half:])
        + "</xml>"
        + spaces
    ).encode("utf-8", "surrogatepass")
    try:
        expected: str | None = parse_xml(body).findtext("Encrypt") or None
    except ParseError:
        expected = None
    try:
        found: str | None = extract_encrypted(body)
    except ParseError:
        found = None
    assert found == expected


FLAT_TEXT = st.text(st.sampled_from("ab1 ]>&<\t\r\n\x01\x7f\x85é中\ufffe"), max_size=8)


@st.composite
def flat_elements(draw: st.DrawFn) -> str:
    """An element at the edge of the flat subset: odd names, hostile text, CDATA or not."""
    name = draw(st.sampled_from(["ToUserName", "MsgId", "a", "_x", "A.b", "x:y", "1a"]))
    text = draw(FLAT_TEXT)
    inner = draw(
        st.sampled_from([_cdata(text), text, text.replace("&", "&amp;").replace("<", "&lt;")])
    )
    return f"<{name}>{inner}</{name}>"


@FUZZ
@given(
    elements=st.lists(flat_elements() | xml_elements(), max_size=5),
    space=st.sampled_from(["", " ", "\n", "\t", "\r\n", "\f"]),
)
def test_flat_reader_reads_what_lxml_reads(elements: list[str], space: str) -> None:
    """Whatever the flat-document shortcut of xml_to_dict accepts, lxml reads the same way."""
    from flask_wecom.safe_xml import _element_value, _read_flat

    text = f"{space}<xml>{space}{space.join(elements)}</xml>{space}"
    flat = _read_flat(text)
    if flat is None:
        return
    read = _element_value(parse_xml(text.encode("utf-8", "surrogatepass")))
    assert flat == (read if isinstance(read, dict) else {})  # a childless root reads as {}


@FUZZ
@given(st.text(max_size=120) | st.binary(max_size=120).map(lambda b: base64.b64encode(b).decode()))
def test_decrypt_of_any_text_is_a_decrypt_error(ciphertext: str) -> None:
    """Base64 decoding and the block-length check refuse garbage; garbage never decrypts."""
    with pytest.raises(DecryptError):
        CRYPTO.decrypt(ciphertext)


def reference_decrypt(ciphertext: bytes) -> tuple[bytes, bytes] | None:
    """The decryption steps of callback-protocol.md §1.4, literally; None where they refuse."""
    if not ciphertext or len(ciphertext) % 16:
        return None
    plain = AES.new(AES_KEY, AES.MODE_CBC, AES_KEY[:16]).decrypt(ciphertext)
    k = plain[-1]
    if not 1 <= k <= 32 or plain[-k:] != bytes((k,)) * k:
        return None
    plain = plain[:-k]
    if len(plain) < 20:
        return None
    n = int.from_bytes(plain[16:20], "big")
    if 20 + n > len(plain):
        return None
    return plain[20 : 20 + n], plain[20 + n :]


@st.composite
def framed_buffers(draw: st.DrawFn) -> bytes:
    """Decrypted buffers whose length prefix, receive id and padding may each lie."""
    message = draw(st.binary(max_size=80))
    receive_id = draw(st.sampled_from([CORP_ID, "", "ww-other"]) | st.text(max_size=6))
    lie = draw(st.sampled_from([None, 0, 2**32 - 1]) | st.integers(0, 120))
    body = frame(message, receive_id, length=lie)
    if draw(st.booleans()):
        return pad(body)
    raw = body + draw(st.binary(min_size=1, max_size=40))
    return raw[:-1] + bytes(-len(raw) % 16) + raw[-1:]  # whole blocks, the drawn last byte kept


@FUZZ
@given(framed_buffers())
def test_decrypt_agrees_with_the_reference_decoder(buffer: bytes) -> None:
    """Padding and length-prefix checks: accept exactly what the spec accepts."""
    ciphertext = encrypt_raw(buffer)
    expected = reference_decrypt(base64.b64decode(ciphertext))
    try:
        message, receive_id = CRYPTO.decrypt(ciphertext)
    except DecryptError:
        assert expected is None or expected[1] not in (CORP_ID.encode(), b"")
        return
    assert expected == (message, receive_id.encode())


@FUZZ
@given(st.binary(max_size=300), st.sampled_from([CORP_ID, ""]))
def test_encrypt_decrypt_round_trip(message: bytes, receive_id: str) -> None:
    assert CRYPTO.decrypt(CRYPTO.encrypt(message, receive_id)) == (message, receive_id)


@FUZZ
@given(plaintexts)
def test_parse_message_returns_a_message_or_parse_error(plaintext: bytes) -> None:
    try:
        message = parse_message(plaintext)
    except ParseError:
        return
    assert isinstance(message, Message) and isinstance(message.type, str)


# -- the whole request path ---------------------------------------------------------------------

content_lengths = st.one_of(
    st.just(None),  # the real length
    st.sampled_from(["", "0", "-1", " 12", "1e3", "\u00b2", "\u0663", "9" * 5000, str(2**64)]),
    st.integers(0, 300_000).map(str),
    latin1.filter(lambda s: len(s) < 8),
)


@FUZZ
@given(
    method=st.sampled_from(["GET", "POST", "PUT", "HEAD", "OPTIONS", "post", "PROPFIND"]),
    path=st.sampled_from(["/wecom", "/wecom/", "/WECOM", "//wecom", "/other", "/"]),
    query=latin1 | st.just(SIGNER.text("x").query_string),
    body=st.binary(max_size=300) | xml_documents.map(str.encode) | json_documents.map(str.encode),
    content_type=st.sampled_from(["", "text/xml", "application/json", "multipart/form-data"]),
    content_length=content_lengths,
    terminated=st.booleans(),
)
def test_any_request_is_refused_or_passed_through(
    method: str,
    path: str,
    query: str,
    body: bytes,
    content_type: str,
    content_length: str | None,
    terminated: bool,
) -> None:
    """Unsigned input never gets a 200 from an endpoint, and nothing escapes as a 500."""
    environ = EnvironBuilder(
        path="/", method=method, data=body, content_type=content_type or None
    ).get_environ()
    environ.update(PATH_INFO=path, QUERY_STRING=query, REQUEST_METHOD=method)
    environ["wsgi.input"] = io.BytesIO(body)
    environ["wsgi.input_terminated"] = terminated
    if content_length is not None:
        environ["CONTENT_LENGTH"] = content_length
    with no_hang():
        response = CLIENT.open(Request(environ))  # a Request is sent as is, not rebuilt
    assert response.status_code in (REFUSALS if path == "/wecom" else PASS_THROUGH)


@FUZZ
@given(
    st.text(max_size=200) | st.binary(max_size=200).map(lambda b: base64.b64encode(b).decode()),
    st.sampled_from(["xml", "json"]),
)
def test_signed_garbage_ciphertext_is_refused(ciphertext: str, envelope: EnvelopeFormat) -> None:
    """A valid signature over a ciphertext that is not one: the decoder refuses it (400).

    JSON carries any string exactly. XML may read back another string (a ``]]>`` splits the
    CDATA, ``\r`` becomes ``\n``), which the signature then does not cover (403).
    """
    response = post(CLIENT, signed_post(ciphertext, envelope=envelope))
    assert response.status_code in ({400} if envelope == "json" else {400, 403})


def expected_echo(message: Message) -> str | None:
    """The reply the fuzz app must give: an echo for text it can write back, else none."""
    if message.type != "text":
        return None
    try:
        TextReply(f"echo: {message.content}").render(message)
    except ReplyError:
        return None
    return f"echo: {message.content}"


@FUZZ
@given(plaintexts)
def test_encrypted_plaintext_is_answered_exactly(plaintext: bytes) -> None:
    """A valid encryption of any plaintext: 400 iff it does not parse or is not a callback to
    us (the direction check), else the right reply."""
    request = SIGNER.callback(plaintext)
    response = post(ORACLE_CLIENT, request)
    try:
        message = parse_message(plaintext)
        check_direction(ENDPOINT, message)
    except WeComError:
        assert response.status_code == 400
        return
    assert response.status_code == 200
    reply = SIGNER.open_reply(response.get_data(), request)
    assert getattr(reply, "content", None) == expected_echo(message)


@FUZZ
@given(plaintexts, st.integers(0, 2))
def test_retries_of_any_plaintext_are_answered_alike(plaintext: bytes, retries: int) -> None:
    """With dedup on, every resend of a callback gets the first answer's status and reply."""
    request = SIGNER.callback(plaintext)
    first = post(CLIENT, request)
    assert first.status_code in {200, 400}
    opened = SIGNER.open_reply(first.get_data(), request) if first.status_code == 200 else None
    for _ in range(retries):
        retry = SIGNER.resend(request)
        response = post(CLIENT, retry)
        assert response.status_code == first.status_code
        if first.status_code == 200:
            assert SIGNER.open_reply(response.get_data(), retry) == opened


# -- crashes found by fuzzing, kept as regressions ----------------------------------------------


def with_environ(**overrides: str) -> Callable[[], Any]:
    """A valid callback whose WSGI environ then gets ``overrides``, as a server could pass."""

    def send() -> Any:
        request = SIGNER.text("hi")
        environ = EnvironBuilder(
            path="/wecom", method="POST", query_string=request.query_string, data=request.body
        ).get_environ()
        environ.update(overrides)
        return CLIENT.open(Request(environ))

    return send


def signed(build: Callable[[CallbackSigner], SignedRequest]) -> Callable[[], Any]:
    return lambda: post(CLIENT, build(SIGNER))


def deep_json_envelope(s: CallbackSigner) -> SignedRequest:
    request = s.text("hi", format="json")
    document = json.loads(request.body)
    body = b'{"encrypt": "%s", "x": %s}' % (document["encrypt"].encode(), b"[" * 2000 + b"]" * 2000)
    return replace(request, body=body)


def app_json(content: str) -> Callable[[CallbackSigner], SignedRequest]:
    """An app callback in the JSON form, whose text content XML cannot carry."""
    document = {
        "ToUserName": CORP_ID,
        "FromUserName": "zhangsan",
        "MsgType": "text",
        "Content": content,
    }
    return lambda s: s.callback(json.dumps(document))


@pytest.mark.parametrize(
    ("send", "status"),
    [
        pytest.param(with_environ(CONTENT_LENGTH="\u00b2"), 400, id="content-length-superscript"),
        pytest.param(with_environ(CONTENT_LENGTH="9" * 5000), 413, id="content-length-5000-digits"),
        pytest.param(with_environ(PATH_INFO="//wecom"), 404, id="path-alias-skips-middleware"),
        pytest.param(signed(deep_json_envelope), 400, id="json-envelope-nested-2000-deep"),
        pytest.param(signed(lambda s: s.text("x" * 2100)), 200, id="echo-longer-than-a-text-reply"),
        pytest.param(signed(app_json("\u0001")), 200, id="echo-of-a-control-character"),
        pytest.param(signed(app_json("\ud800")), 200, id="echo-of-a-lone-surrogate"),
    ],
)
def test_found_crashes(send: Callable[[], Any], status: int) -> None:
    """Inputs that once escaped as exceptions or 500s: now typed refusals, 404 or empty 200s."""
    response = send()
    assert response.status_code == status
    if status == 200:
        assert response.get_data() == b""  # the app's reply cannot be written: answer empty
