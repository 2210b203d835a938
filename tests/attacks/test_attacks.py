"""The attack corpus: one row per attack, sent over real HTTP to the example app under gunicorn.

Every row asserts the status the attack gets, then that it did no harm: the workers are the same
processes and still answer a valid callback correctly, nothing was logged that reveals the
token, the key or a callback's plaintext, and no traceback was written.

The last section checks, from the source, that secrets are only ever compared in constant time.
"""

from __future__ import annotations

import ast
import hashlib
import hmac
import inspect
import secrets
import socket
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import quote, urlencode

import pytest
import requests

import flask_wecom
from flask_wecom.crypto import WeComCrypto, decode_aes_key, signature
from flask_wecom.envelope import extract_encrypted
from flask_wecom.errors import SignatureError
from flask_wecom.middleware import DEFAULT_MAX_BODY
from flask_wecom.safe_xml import parse_xml
from flask_wecom.testing import CallbackSigner, SignedRequest, app_message_xml
from harness.forge import (
    CORP_ID,
    ENV,
    KEY,
    MARKER,
    TOKEN,
    encrypt_raw,
    frame,
    pad,
    signed_post,
)
from harness.web_servers import GunicornServer

#: The status recorded when the client gave up before any answer came.
NO_ANSWER = 0
OTHER_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"


@dataclass(frozen=True)
class Target:
    """The server under attack and what is known about it before the first row."""

    server: GunicornServer
    signer: CallbackSigner
    pids: list[int]


@dataclass(frozen=True)
class Answer:
    """What one attack got back."""

    status: int
    body: bytes
    seconds: float
    #: The request sent, when its reply is to be decrypted.
    request: SignedRequest | None = None


@dataclass(frozen=True)
class Expect:
    """What a row must get: the status, the decrypted reply for 200s, an upper bound on time."""

    status: int
    reply: str | None = None
    within: float = 3.0


Attack = Callable[[Target], Answer]


@pytest.fixture(scope="module")
def target() -> Iterator[Target]:
    with GunicornServer("example_app.app:app", env=ENV, workers=2) as server:
        signer = CallbackSigner(TOKEN, KEY, CORP_ID)
        for _ in range(4):  # load the lazy imports of every worker thread before timing rows
            send(server, signer.text("warm up"))
        yield Target(server, signer, sorted(server.worker_pids()))


# -- transports ---------------------------------------------------------------------------------


def send(server: GunicornServer, request: SignedRequest, path: str = "/wecom") -> Answer:
    started = time.monotonic()
    response = requests.request(
        request.method,
        server.url(request.url(path)),
        data=request.body,
        headers={"Content-Type": request.content_type} if request.content_type else {},
        timeout=10,
    )
    return Answer(response.status_code, response.content, time.monotonic() - started, request)


def exchange(
    server: GunicornServer,
    parts: list[bytes | float],
    *,
    shutdown: bool = False,
    wait: float = 5.0,
    during: Callable[[], None] | None = None,
) -> Answer:
    """Send raw bytes (a float is a pause, in seconds) and read one response, if any comes.

    :param shutdown: close the sending side afterwards, so the server sees the end of the body.
    :param during: called after sending, before reading (e.g. to probe the server meanwhile).
    """
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", server.port), timeout=wait) as sock:
        for part in parts:
            if isinstance(part, float):
                time.sleep(part)
            else:
                sock.sendall(part)
        if shutdown:
            sock.shutdown(socket.SHUT_WR)
        if during is not None:
            during()
        data = b""
        try:
            while _missing(data):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        except TimeoutError:
            return Answer(NO_ANSWER, b"", time.monotonic() - started)
    if not data.startswith(b"HTTP/"):
        return Answer(NO_ANSWER, b"", time.monotonic() - started)
    head, _, rest = data.partition(b"\r\n\r\n")
    body = rest[: _content_length(head)]  # what follows belongs to the next response
    return Answer(int(head.split(b" ", 2)[1]), body, time.monotonic() - started)


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 0


def _missing(response: bytes) -> bool:
    """True until ``response`` holds a whole head and as many body bytes as it announces."""
    head, found, body = response.partition(b"\r\n\r\n")
    return not found or len(body) < _content_length(head)


def request_head(request: SignedRequest, headers: dict[str, str], method: str = "POST") -> bytes:
    lines = [f"{method} /wecom?{request.query_string} HTTP/1.1", "Host: 127.0.0.1"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def chunked(body: bytes, size: int = 4096) -> bytes:
    parts = [
        b"%x\r\n%s\r\n" % (len(body[i : i + size]), body[i : i + size])
        for i in range(0, len(body), size)
    ]
    return b"".join(parts) + b"0\r\n\r\n"


# -- builders -----------------------------------------------------------------------------------


def text_xml(content: str) -> bytes:
    """A text-message plaintext with a MsgId of its own."""
    fields: dict[str, str | int] = {
        "FromUserName": "zhangsan",
        "CreateTime": int(time.time()),
        "Content": content,
        "MsgId": 2**62 + secrets.randbelow(2**62),  # unique: retry dedup keys on it
        "AgentID": 1000002,
    }
    return app_message_xml("text", fields, to_user=CORP_ID).encode()


def with_signature(request: SignedRequest, sig: str) -> SignedRequest:
    query = {"msg_signature": sig, "timestamp": request.timestamp, "nonce": request.nonce}
    return replace(request, query_string=urlencode(query, quote_via=quote))


def encrypted_of(request: SignedRequest) -> str:
    """The ciphertext inside a request's XML envelope."""
    return request.body.split(b"<Encrypt><![CDATA[")[1].split(b"]]>")[0].decode()


def http(build: Callable[[CallbackSigner], SignedRequest]) -> Attack:
    """An attack that is one ordinary HTTP request built from the signer."""
    return lambda t: send(t.server, build(t.signer))


def forged(build: Callable[[], SignedRequest]) -> Attack:
    """An attack that is one ordinary HTTP request needing no signer."""
    return lambda t: send(t.server, build())


def plaintext(document: bytes) -> Attack:
    """A correctly signed and encrypted callback whose plaintext is ``document``."""
    return http(lambda s: s.callback(document))


def framed(padded: bytes) -> Attack:
    """A correctly signed callback whose decrypted buffer is exactly ``padded``."""
    return forged(lambda: signed_post(encrypt_raw(padded)))


def envelope(body: bytes) -> Attack:
    """A callback whose envelope is ``body``, signed for a valid ciphertext it may not carry."""
    return http(lambda s: replace(s.text(MARKER), body=body))


# -- padding: every value of the final byte -----------------------------------------------------


def padding_row(value: int) -> object:
    """A buffer ending in ``value``: correct PKCS#7 for 1..32 (then 200), refused otherwise."""
    content = f"{MARKER} pad {value}"
    document = text_xml(content)
    if 1 <= value <= 32:
        spaces = (-len(frame(document)) - value) % 32  # XML allows spaces after the root
        padded = frame(document + b" " * spaces) + bytes((value,)) * value
        expect = Expect(200, reply=f"echo: {content}")
    else:
        body = frame(document)
        padded = body + bytes((value,)) * (32 - len(body) % 32)
        expect = Expect(400)
    assert len(padded) % 32 == 0 and padded[-1] == value
    return pytest.param(framed(padded), expect, id=f"pad-byte-{value:03d}")


PADDING_ROWS = [padding_row(value) for value in range(256)]


def inconsistent_padding() -> bytes:
    body = frame(text_xml(MARKER))
    padded = pad(body)
    k = padded[-1]
    if k < 2:  # need two padding bytes to make them disagree
        padded = pad(body + b" ")
        k = padded[-1]
    return padded[:-2] + bytes((k - 1, k))


# -- bodies over HTTP ---------------------------------------------------------------------------


def huge_declared_body(t: Target) -> Answer:
    """50 MB announced, 64 KiB sent: the 413 must come without waiting for the rest."""
    request = t.signer.text(MARKER)
    head = request_head(request, {"Content-Length": str(50 * 1024 * 1024)})
    return exchange(t.server, [head, b"x" * 65536])


def chunked_over_cap(t: Target) -> Answer:
    request = t.signer.text(MARKER)
    head = request_head(request, {"Transfer-Encoding": "chunked"})
    return exchange(t.server, [head, chunked(b"x" * (DEFAULT_MAX_BODY + 4096))])


def chunked_valid(t: Target) -> Answer:
    request = t.signer.text(MARKER)
    head = request_head(request, {"Transfer-Encoding": "chunked", "Content-Type": "text/xml"})
    return replace(exchange(t.server, [head, chunked(request.body, 100)]), request=request)


def drip(body: bytes, step: int, pause: float) -> list[bytes | float]:
    parts: list[bytes | float] = []
    for i in range(0, len(body), step):
        parts += [pause, body[i : i + step]]
    return parts


def drip_valid_body(t: Target) -> Answer:
    """The body dribbles in over about two seconds; the callback is still answered."""
    request = t.signer.text(MARKER)
    head = request_head(request, {"Content-Length": str(len(request.body))})
    step = len(request.body) // 20 + 1
    return replace(exchange(t.server, [head, *drip(request.body, step, 0.1)]), request=request)


def drip_headers(t: Target) -> Answer:
    """The request head dribbles in byte groups over about two seconds."""
    request = t.signer.text(MARKER)
    head = request_head(request, {"Content-Length": str(len(request.body))})
    return replace(
        exchange(t.server, [*drip(head, len(head) // 20 + 1, 0.1), request.body]), request=request
    )


def stalled_body(t: Target) -> Answer:
    """Half the body, then silence: no answer, and other clients are served meanwhile."""
    request = t.signer.text(MARKER)
    head = request_head(request, {"Content-Length": str(len(request.body))})
    half = request.body[: len(request.body) // 2]
    return exchange(t.server, [head, half], wait=2.0, during=lambda: assert_serving(t))


def shorter_than_declared(t: Target) -> Answer:
    """Content-Length promises more than is sent before the client ends its side."""
    request = t.signer.text(MARKER)
    head = request_head(request, {"Content-Length": str(len(request.body))})
    return exchange(t.server, [head, request.body[: len(request.body) // 2]], shutdown=True)


def longer_than_declared(t: Target) -> Answer:
    """Bytes after the declared body are the next request (here garbage), not part of this one."""
    request = t.signer.text(MARKER)
    head = request_head(request, {"Content-Length": str(len(request.body))})
    return replace(
        exchange(t.server, [head, request.body + b"<xml>smuggled</xml>\r\n\r\n"]), request=request
    )


def raw_head(extra: dict[str, str]) -> Attack:
    """A request with extra headers the HTTP server itself must judge."""

    def attack(t: Target) -> Answer:
        request = t.signer.text(MARKER)
        return exchange(t.server, [request_head(request, extra), request.body])

    return attack


def raw_path(path: bytes) -> Attack:
    """A valid callback sent to ``path`` exactly as written (no client-side normalising)."""

    def attack(t: Target) -> Answer:
        request = t.signer.text(MARKER)
        head = request_head(request, {"Content-Length": str(len(request.body))})
        head = head.replace(b"/wecom?", path + b"?", 1)
        return replace(exchange(t.server, [head, request.body]), request=request)

    return attack


def raw_line(line: bytes) -> Attack:
    return lambda t: exchange(t.server, [line + b"\r\nHost: 127.0.0.1\r\n\r\n"])


# -- signatures ---------------------------------------------------------------------------------


def unsorted_signature(s: CallbackSigner) -> SignedRequest:
    """SHA-1 over token, timestamp, nonce and ciphertext in their natural order, not sorted."""
    request = s.text(MARKER)
    joined = TOKEN + request.timestamp + request.nonce + encrypted_of(request)
    return with_signature(request, hashlib.sha1(joined.encode()).hexdigest())


def signature_of_other_body(s: CallbackSigner) -> SignedRequest:
    first, second = s.text(MARKER, nonce="42"), s.text(MARKER + " other", nonce="42")
    return replace(first, body=second.body)


def tweak_signature(change: Callable[[str], str]) -> Attack:
    def build(s: CallbackSigner) -> SignedRequest:
        request = s.text(MARKER)
        good = signature(TOKEN, request.timestamp, request.nonce, encrypted_of(request))
        return with_signature(request, change(good))

    return http(build)


def duplicate(name: str, value: str) -> Attack:
    def build(s: CallbackSigner) -> SignedRequest:
        request = s.text(MARKER)
        return replace(request, query_string=f"{request.query_string}&{name}={value}")

    return http(build)


def non_utf8_nonce(s: CallbackSigner) -> SignedRequest:
    request = s.text(MARKER)
    query = request.query_string.replace(f"nonce={request.nonce}", "nonce=%FF%FE%C3%28")
    return replace(request, query_string=query)


# -- XML and JSON bombs -------------------------------------------------------------------------

XXE = b'<!DOCTYPE xml [<!ENTITY x SYSTEM "file:///etc/passwd">]><xml><Content>&x;</Content></xml>'
LAUGHS = (
    b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    + b"".join(
        b'<!ENTITY lol%d "%s">' % (i, (b"&lol%d;" % (i - 1) if i > 1 else b"&lol;") * 10)
        for i in range(1, 10)
    )
    + b"]><xml><Content>&lol9;</Content></xml>"
)
DOCTYPE = b"<!DOCTYPE xml><xml><MsgType>text</MsgType></xml>"
NO_DOCTYPE_ENTITY = b"<xml><MsgType>text</MsgType><Content>&undefined;</Content></xml>"
DEEP_XML = b"<xml>" + b"<a>" * 20_000 + b"</a>" * 20_000 + b"</xml>"
DEEP_JSON = b'{"MsgType": "text", "x": ' + b"[" * 5_000 + b"]" * 5_000 + b"}"
UTF16_DOCTYPE = '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE xml><xml/>'.encode("utf-16")


def bomb_envelope(prolog: bytes) -> Attack:
    """An envelope carrying a valid signed ciphertext behind a hostile prolog."""

    def build(s: CallbackSigner) -> SignedRequest:
        request = s.text(MARKER)
        body = (
            prolog
            + b"<xml><Encrypt><![CDATA[%s]]></Encrypt></xml>" % encrypted_of(request).encode()
        )
        return replace(request, body=body)

    return http(build)


def deep_envelope(s: CallbackSigner) -> SignedRequest:
    request = s.text(MARKER)
    encrypted = encrypted_of(request).encode()
    body = (
        b"<xml>" + b"<a>" * 30_000 + b"</a>" * 30_000 + b"<Encrypt>%s</Encrypt></xml>" % encrypted
    )
    return replace(request, body=body)


def deep_json_envelope(s: CallbackSigner) -> SignedRequest:
    request = s.text(MARKER)
    nested = b"[" * 50_000 + b"]" * 50_000
    body = b'{"encrypt": "%s", "x": %s}' % (encrypted_of(request).encode(), nested)
    return replace(request, body=body)


# -- the corpus ---------------------------------------------------------------------------------


def oracle_get(t: Target) -> Answer:
    """A captured callback's ciphertext sent as a URL check's echostr (a decryption oracle)."""
    request = t.signer.text(f"{MARKER} my salary is 12345")
    query = f"{request.query_string}&echostr={quote(encrypted_of(request), safe='')}"
    return send(t.server, replace(request, method="GET", query_string=query, body=b""))


def reflected_reply(t: Target) -> Answer:
    """The server's own encrypted reply posted back to it as a callback."""
    answer = send(t.server, t.signer.text(MARKER))
    fields = {f: _xml_field(answer.body, f) for f in ("MsgSignature", "TimeStamp", "Nonce")}
    query = urlencode(
        {
            "msg_signature": fields["MsgSignature"],
            "timestamp": fields["TimeStamp"],
            "nonce": fields["Nonce"],
        }
    )
    body = (
        b"<xml><Encrypt><![CDATA["
        + extract_encrypted(answer.body).encode()
        + b"]]></Encrypt></xml>"
    )
    return send(t.server, SignedRequest("POST", query, body, "text/xml", b"", "", ""))


def _xml_field(body: bytes, name: str) -> str:
    return parse_xml(body).findtext(name) or ""


NOW = int(time.time())

ATTACKS = [
    # an observer without the keys (issue 19)
    pytest.param(oracle_get, Expect(400), id="observer-oracle-get"),
    pytest.param(reflected_reply, Expect(400), id="observer-reflected-reply"),
    # signatures
    pytest.param(http(lambda s: s.text(MARKER, signature="0" * 40)), Expect(403), id="sig-forged"),
    pytest.param(tweak_signature(lambda g: g[:-1]), Expect(403), id="sig-truncated-39"),
    pytest.param(tweak_signature(lambda g: g[:20]), Expect(403), id="sig-truncated-20"),
    pytest.param(tweak_signature(lambda g: ""), Expect(403), id="sig-empty"),
    pytest.param(tweak_signature(str.upper), Expect(403), id="sig-upper-case-hex"),
    pytest.param(tweak_signature(lambda g: g + " "), Expect(403), id="sig-trailing-space"),
    pytest.param(tweak_signature(lambda g: g + "00"), Expect(403), id="sig-extended"),
    pytest.param(http(unsorted_signature), Expect(403), id="sig-unsorted-fields"),
    pytest.param(http(signature_of_other_body), Expect(403), id="sig-of-another-ciphertext"),
    pytest.param(
        forged(lambda: signed_post(encrypt_raw(pad(frame(text_xml(MARKER)))), token="guess")),
        Expect(403),
        id="sig-other-token",
    ),
    # the replay window
    pytest.param(
        http(lambda s: s.text(MARKER, timestamp=NOW - 3600)), Expect(403), id="replay-hour-old"
    ),
    pytest.param(
        http(lambda s: s.text(MARKER, timestamp=NOW + 3600)), Expect(403), id="replay-hour-ahead"
    ),
    pytest.param(http(lambda s: s.text(MARKER, timestamp=0)), Expect(403), id="replay-epoch"),
    pytest.param(
        http(lambda s: s.text(MARKER, timestamp="9" * 13)), Expect(403), id="timestamp-13-digits"
    ),
    pytest.param(
        http(lambda s: s.text(MARKER, timestamp="-5")), Expect(403), id="timestamp-negative"
    ),
    pytest.param(
        http(lambda s: s.text(MARKER, timestamp=f"{NOW}.5")), Expect(403), id="timestamp-fraction"
    ),
    # whose callback it is
    pytest.param(
        http(lambda s: s.text(MARKER, receive_id="ww-someone-else")),
        Expect(400),
        id="other-receive-id",
    ),
    pytest.param(http(lambda s: s.text(MARKER, receive_id="")), Expect(400), id="empty-receive-id"),
    pytest.param(
        forged(lambda: signed_post(encrypt_raw(pad(frame(text_xml(MARKER))), OTHER_KEY))),
        Expect(400),
        id="other-aes-key",
    ),
    # framing: padding and the length prefix
    *PADDING_ROWS,
    pytest.param(framed(inconsistent_padding()), Expect(400), id="pad-bytes-disagree"),
    pytest.param(framed(bytes((32,)) * 32), Expect(400), id="pad-whole-buffer"),
    pytest.param(framed(pad(frame(b"")[:10])), Expect(400), id="buffer-shorter-than-header"),
    pytest.param(
        framed(pad(frame(text_xml(MARKER), length=len(text_xml(MARKER)) + 100))),
        Expect(400),
        id="length-prefix-past-end",
    ),
    pytest.param(
        framed(pad(frame(text_xml(MARKER), length=2**32 - 1))), Expect(400), id="length-prefix-max"
    ),
    pytest.param(
        framed(pad(frame(text_xml(MARKER), length=len(text_xml(MARKER)) - 5))),
        Expect(400),
        id="length-prefix-short",
    ),
    pytest.param(
        framed(pad(frame(text_xml(MARKER), length=0))), Expect(400), id="length-prefix-zero"
    ),
    pytest.param(
        forged(lambda: signed_post("QUJDREVGR0hJSktMTU5PUFE=")),
        Expect(400),
        id="ciphertext-17-bytes",
    ),
    pytest.param(
        forged(lambda: signed_post("not*base64!")), Expect(400), id="ciphertext-not-base64"
    ),
    pytest.param(
        forged(lambda: signed_post("QUJD", envelope="json")),
        Expect(400),
        id="ciphertext-3-bytes-json",
    ),
    # the plaintext document
    pytest.param(plaintext(DOCTYPE), Expect(400), id="plaintext-doctype"),
    pytest.param(plaintext(XXE), Expect(400), id="plaintext-external-entity"),
    pytest.param(plaintext(LAUGHS), Expect(400), id="plaintext-billion-laughs"),
    pytest.param(plaintext(NO_DOCTYPE_ENTITY), Expect(400), id="plaintext-undeclared-entity"),
    # over the 64 KiB envelope cap, refused before the signature is computed
    pytest.param(plaintext(DEEP_XML), Expect(413), id="plaintext-deep-xml"),
    pytest.param(plaintext(DEEP_JSON), Expect(400), id="plaintext-deep-json"),
    pytest.param(plaintext(UTF16_DOCTYPE), Expect(400), id="plaintext-utf16-doctype"),
    pytest.param(plaintext(b"\xff\xfe<xml/>"), Expect(400), id="plaintext-not-utf8"),
    # the envelope
    pytest.param(bomb_envelope(b"<!DOCTYPE xml>"), Expect(400), id="envelope-doctype"),
    pytest.param(
        bomb_envelope(b'<!DOCTYPE xml [<!ENTITY x SYSTEM "file:///etc/passwd">]>'),
        Expect(400),
        id="envelope-external-entity",
    ),
    pytest.param(
        bomb_envelope(LAUGHS.split(b"<xml>")[0]), Expect(400), id="envelope-billion-laughs"
    ),
    pytest.param(envelope(UTF16_DOCTYPE), Expect(400), id="envelope-utf16-doctype"),
    pytest.param(http(deep_envelope), Expect(413), id="envelope-deep-xml"),
    pytest.param(http(deep_json_envelope), Expect(413), id="envelope-deep-json"),
    pytest.param(
        envelope(b"<xml><Encrypt></Encrypt></xml>"), Expect(400), id="envelope-empty-encrypt"
    ),
    pytest.param(envelope(b'{"encrypt": 1}'), Expect(400), id="envelope-json-number"),
    pytest.param(envelope(b"[]"), Expect(400), id="envelope-json-array"),
    pytest.param(envelope(b""), Expect(400), id="envelope-empty"),
    # bodies
    pytest.param(huge_declared_body, Expect(413, within=2.0), id="body-50mb-declared"),
    pytest.param(chunked_over_cap, Expect(413, within=2.0), id="body-chunked-over-cap"),
    pytest.param(
        envelope(b"<xml>" + b" " * DEFAULT_MAX_BODY + b"</xml>"),
        Expect(413),
        id="body-one-over-cap",
    ),
    pytest.param(chunked_valid, Expect(200, reply=f"echo: {MARKER}"), id="body-chunked-valid"),
    pytest.param(
        drip_valid_body, Expect(200, reply=f"echo: {MARKER}", within=5.0), id="body-slow-drip"
    ),
    pytest.param(
        drip_headers, Expect(200, reply=f"echo: {MARKER}", within=5.0), id="head-slow-drip"
    ),
    pytest.param(stalled_body, Expect(NO_ANSWER, within=5.0), id="body-stalled"),
    pytest.param(shorter_than_declared, Expect(400), id="body-shorter-than-content-length"),
    pytest.param(
        longer_than_declared,
        Expect(200, reply=f"echo: {MARKER}"),
        id="body-longer-than-content-length",
    ),
    pytest.param(
        raw_head({"Content-Length": "10", "Transfer-Encoding": "chunked"}),
        Expect(400),
        id="content-length-and-chunked",
    ),
    pytest.param(raw_head({"Content-Length": "abc"}), Expect(400), id="content-length-not-number"),
    pytest.param(raw_head({"Content-Length": "-1"}), Expect(400), id="content-length-negative"),
    pytest.param(
        raw_head({"Content-Length": "\u00b2"}), Expect(400), id="content-length-superscript"
    ),
    pytest.param(
        raw_head({"Content-Length": "9" * 5000}), Expect(400), id="content-length-5000-digits"
    ),
    # the query string and the request line
    pytest.param(duplicate("nonce", "1"), Expect(400), id="query-duplicate-nonce"),
    pytest.param(duplicate("msg_signature", "0" * 40), Expect(400), id="query-duplicate-signature"),
    pytest.param(http(non_utf8_nonce), Expect(403), id="query-non-utf8-percent-encoded"),
    pytest.param(
        raw_line(b"GET /wecom?msg_signature=\xff\xfe&timestamp=1&nonce=2&echostr=abc HTTP/1.1"),
        Expect(400),
        id="query-raw-non-utf8-bytes",
    ),
    # URL verification
    pytest.param(http(lambda s: s.verification(signature="0" * 40)), Expect(403), id="get-forged"),
    pytest.param(
        http(lambda s: s.verification(timestamp=NOW - 3600)), Expect(403), id="get-hour-old"
    ),
    pytest.param(
        http(lambda s: s.verification(receive_id="ww-someone-else")),
        Expect(400),
        id="get-other-receive-id",
    ),
    pytest.param(
        forged(lambda: SignedRequest("GET", "msg_signature=0&nonce=1", b"", "", b"", "", "")),
        Expect(403),  # the query is checked first: the signature is malformed
        id="get-without-echostr",
    ),
    pytest.param(
        http(lambda s: SignedRequest("PUT", s.text(MARKER).query_string, b"", "", b"", "", "")),
        Expect(405),
        id="method-put",
    ),
    pytest.param(
        lambda t: send(t.server, t.signer.text(MARKER), "/wecom/"),
        Expect(404),
        id="path-trailing-slash",
    ),
    pytest.param(raw_path(b"//wecom"), Expect(404), id="path-double-slash"),
    pytest.param(raw_path(b"/wecom//"), Expect(404), id="path-double-trailing-slash"),
    pytest.param(
        raw_path(b"/%77ecom"), Expect(200, reply=f"echo: {MARKER}"), id="path-percent-encoded"
    ),
    pytest.param(
        lambda t: send(t.server, t.signer.text(MARKER), "/WECOM"), Expect(404), id="path-upper-case"
    ),
]


@pytest.mark.slow
@pytest.mark.parametrize(("attack", "expect"), ATTACKS)
def test_attack(target: Target, attack: Attack, expect: Expect) -> None:
    log_before = len(target.server.log())
    answer = attack(target)
    assert answer.status == expect.status
    assert answer.seconds < expect.within
    if expect.reply is not None:
        assert answer.request is not None
        reply = target.signer.open_reply(answer.body, answer.request)
        assert getattr(reply, "content", None) == expect.reply
    assert_serving(target)
    assert sorted(target.server.worker_pids()) == target.pids, "a worker died"
    assert_nothing_secret_logged(target.server.log()[log_before:])


def assert_serving(target: Target) -> None:
    request = target.signer.text("probe")
    answer = send(target.server, request)
    assert answer.status == 200
    reply = target.signer.open_reply(answer.body, request)
    assert getattr(reply, "content", None) == "echo: probe"


def assert_nothing_secret_logged(log: str) -> None:
    for secret in (TOKEN, KEY, decode_aes_key(KEY).hex(), MARKER, "Traceback"):
        assert secret not in log


# -- constant-time comparisons ------------------------------------------------------------------

SECRET_NAME = ("signature", "token", "secret", "key")
#: Equality tests on secret-looking names that are not secret comparisons, each with its reason.
REVIEWED = {
    # Both sides are server-held: the cached access token and the one WeCom just rejected.
    ("client.py", "cached.access_token == access_token"),
    # A template-card field name from the app's own reply, not a credential.
    ("replies.py", "_card_key(_card_xml_name(child_key)) == child_key"),
    # The length of a configured key against a constant.
    ("validation.py", "len(aes_key) != AES_KEY_LENGTH"),
    # Lease tokens: random ids of which process holds a bot's long connection, not secrets.
    ("longconn.py", "holder != self.lease.token"),
    ("longconn.py", "previous != self.token"),
}


def secret_equality_tests() -> set[tuple[str, str]]:
    """Every ``==`` / ``!=`` in flask_wecom with an operand named like a secret."""
    found = set()
    for path in sorted(Path(flask_wecom.__file__).parent.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if not isinstance(node, ast.Compare):
                continue
            if not any(isinstance(op, (ast.Eq, ast.NotEq)) for op in node.ops):
                continue
            operands = [node.left, *node.comparators]
            if any(_named_like_secret(operand) for operand in operands):
                found.add((path.name, ast.unparse(node)))
    return found


def _named_like_secret(node: ast.expr) -> bool:
    """A name, attribute or subscript (not a call such as ``len(key)``) named like a secret."""
    while isinstance(node, ast.Subscript):
        node = node.value
    name = (
        node.id
        if isinstance(node, ast.Name)
        else node.attr
        if isinstance(node, ast.Attribute)
        else ""
    )
    return any(word in name.lower() for word in SECRET_NAME)


def test_no_early_exit_comparison_of_secrets() -> None:
    assert secret_equality_tests() == REVIEWED


def test_check_signature_compares_with_compare_digest(monkeypatch: pytest.MonkeyPatch) -> None:
    source = textwrap.dedent(inspect.getsource(WeComCrypto.check_signature))
    calls = {
        ast.unparse(node.func) for node in ast.walk(ast.parse(source)) if isinstance(node, ast.Call)
    }
    assert "hmac.compare_digest" in calls

    seen: list[tuple[str, str]] = []
    real = hmac.compare_digest

    def spy(a: str, b: str) -> bool:
        seen.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    crypto = WeComCrypto(TOKEN, KEY, CORP_ID)
    good = signature(TOKEN, "1", "2", "abc")
    crypto.check_signature(good, "1", "2", "abc")
    assert seen == [(good, good)]  # the expected and the given signature, both in full


def test_signature_refusals_do_not_say_how_close_they_were() -> None:
    """A near miss and a wild guess are refused with the same words."""
    crypto = WeComCrypto(TOKEN, KEY, CORP_ID)
    good = signature(TOKEN, "1", "2", "abc")
    messages = set()
    for guess in (good[:-1] + "0", "0" * 40, "", good.upper()):
        with pytest.raises(SignatureError) as caught:
            crypto.check_signature(guess, "1", "2", "abc")
        messages.add(str(caught.value))
    assert messages == {"msg_signature does not match"}
