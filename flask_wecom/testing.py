"""Build signed, encrypted WeCom callbacks for your own tests, and read the replies back.

The callbacks are exactly what WeCom sends: percent-encoded query strings with
``msg_signature``, ``timestamp`` and ``nonce``, and an encrypted XML (or AI-bot
JSON) body. Any client can send them: Flask's test client, werkzeug's, or
``requests`` against a live server::

    signer = CallbackSigner(token, encoding_aes_key, corp_id)
    request = signer.text("hello", from_user="zhangsan")
    response = client.post("/wecom?" + request.query_string, data=request.body)
    reply = signer.open_reply(response.data, request)      # a flask_wecom.replies.Reply
    assert reply.content == "echo: hello"

To test a refusal, override exactly one field: ``signer.text("hi", signature="0" * 40)``,
``timestamp=1`` (stale), ``nonce="..."``, ``receive_id="someone-else"``. To test retry
handling, ``signer.resend(request)`` sends the same plaintext again with a fresh
timestamp and nonce, as WeCom does when no 200 arrives within 5 seconds.

:class:`Credentials` makes a fresh, well-formed credential set (token, EncodingAESKey,
receive id) and the ``WECOM_*`` config that goes with it.

:class:`WeComTestClient` wraps any WSGI app and does the sending for you; the
pytest plugin (:mod:`flask_wecom.pytest_plugin`) hands one to your tests.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import secrets
import string
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

from .crypto import WeComCrypto
from .crypto import signature as sign
from .envelope import EnvelopeFormat, read_reply_envelope
from .errors import SignatureError
from .messages import Message
from .replies import Reply, XmlValue, parse_reply, xml_elements
from .safe_xml import cdata

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

    from .asgi import ASGIApp

__all__ = [
    "CallbackResponse",
    "CallbackSigner",
    "Credentials",
    "SignedRequest",
    "WeComTestClient",
    "aibot_payload",
    "app_message_xml",
    "generate_encoding_aes_key",
    "generate_token",
]

#: MsgIds are random 64-bit values above 2**53, like real ones, so signers never collide.
_MSG_ID_RANGE = (2**62, 2**63 - 1)

#: The alphabet of the admin console's keys and tokens: letters and digits.
_ALPHANUMERIC = string.ascii_letters + string.digits
_TOKEN_LENGTH = 32  # the longest token WeCom accepts (1-32 letters and digits)


def generate_encoding_aes_key() -> str:
    """A fresh EncodingAESKey: 43 random letters and digits, like the admin console's."""
    return "".join(secrets.choice(_ALPHANUMERIC) for _ in range(43))


def generate_token() -> str:
    """A fresh Token: 32 random letters and digits (WeCom accepts 1 to 32)."""
    return "".join(secrets.choice(_ALPHANUMERIC) for _ in range(_TOKEN_LENGTH))


@dataclass(frozen=True)
class Credentials:
    """One credential set: what the callback settings page (接收消息服务器配置) holds.

    Usage::

        credentials = Credentials.generate()
        app.config.update(credentials.config)       # WECOM_TOKEN, ...
        signer = credentials.signer()
    """

    #: The Token.
    token: str
    #: The 43-character EncodingAESKey.
    encoding_aes_key: str
    #: The receive id: the CorpID (apps), SuiteID (suite commands) or ``""`` (AI bots).
    receive_id: str

    def __repr__(self) -> str:
        return f"Credentials(receive_id={self.receive_id!r})"  # never show the secrets

    @classmethod
    def generate(cls, receive_id: str | None = None) -> Credentials:
        """Fresh random credentials; the receive id defaults to a random CorpID-like ``ww…``."""
        corp_id = "ww" + secrets.token_hex(8) if receive_id is None else receive_id
        return cls(generate_token(), generate_encoding_aes_key(), corp_id)

    @property
    def config(self) -> dict[str, str]:
        """``WECOM_TOKEN``, ``WECOM_ENCODING_AES_KEY`` and ``WECOM_CORP_ID``, for ``app.config``."""
        return {
            "WECOM_TOKEN": self.token,
            "WECOM_ENCODING_AES_KEY": self.encoding_aes_key,
            "WECOM_CORP_ID": self.receive_id,
        }

    def signer(self, **options: Any) -> CallbackSigner:
        """A :class:`CallbackSigner` for these credentials; ``options`` go to its constructor."""
        return CallbackSigner(self.token, self.encoding_aes_key, self.receive_id, **options)


def app_message_xml(msg_type: str, fields: Mapping[str, XmlValue], *, to_user: str) -> str:
    """Write a self-built-app callback plaintext: ``<xml>`` with ToUserName, MsgType and ``fields``.

    Values are written in element order; mappings become nested elements, lists
    repeat their element, numbers are written bare and strings in CDATA.
    """
    return "<xml>" + xml_elements({"ToUserName": to_user, **fields, "MsgType": msg_type}) + "</xml>"


def aibot_payload(msgtype: str, body: Mapping[str, Any], **common: Any) -> str:
    """Write an AI-bot (智能机器人) callback plaintext: the JSON of doc 100719.

    ``aibotid`` and the sender (``from``) default to sample values, as every callback has them.
    """
    common = {"aibotid": "AIBOTID", "from": {"userid": "zhangsan"}, **common}
    return json.dumps({**common, "msgtype": msgtype, **body}, ensure_ascii=False)


@dataclass(frozen=True)
class SignedRequest:
    """One callback as WeCom would send it."""

    #: ``"GET"`` (URL verification) or ``"POST"`` (callback).
    method: str
    #: The percent-encoded query string, without the ``?``.
    query_string: str
    #: The request body (empty for GET).
    body: bytes
    #: The Content-Type WeCom sends with the body.
    content_type: str
    #: The plaintext that was encrypted (the echo for GET).
    plaintext: bytes
    #: The timestamp used.
    timestamp: str
    #: The nonce used; a passive reply is signed with the same nonce.
    nonce: str
    #: The body's envelope format, ``"xml"`` or ``"json"`` (AI bots).
    format: EnvelopeFormat = "xml"

    def url(self, path: str) -> str:
        """``path`` (or a full URL) with this request's query string appended."""
        return f"{path}{'&' if '?' in path else '?'}{self.query_string}"


class CallbackSigner:
    """Makes callbacks signed and encrypted with one credential set.

    :param token: the Token.
    :param encoding_aes_key: the 43-character EncodingAESKey.
    :param receive_id: the CorpID (apps), SuiteID (suite commands) or ``""`` (AI bots).
    :param format: ``"xml"`` envelopes (apps, suites) or ``"json"`` (AI bots).
    :param clock: the time callbacks are stamped with; defaults to :func:`time.time`.
    :param to_user: ``ToUserName`` written into app messages; defaults to ``receive_id``.
    :param random_bytes: the random prefix of each ciphertext (see
        :class:`~flask_wecom.crypto.WeComCrypto`); pin it for byte-exact tests.
    """

    def __init__(
        self,
        token: str,
        encoding_aes_key: str,
        receive_id: str = "",
        *,
        format: EnvelopeFormat = "xml",
        clock: Callable[[], float] = time.time,
        to_user: str | None = None,
        random_bytes: Callable[[int], bytes] | None = None,
    ) -> None:
        self.crypto = WeComCrypto(token, encoding_aes_key, receive_id, random_bytes=random_bytes)
        self.format: EnvelopeFormat = format
        self.clock = clock
        self.to_user = receive_id if to_user is None else to_user
        low, high = _MSG_ID_RANGE
        self._next_msg_id = low + secrets.randbelow(high - low)

    # -- requests -------------------------------------------------------------------------

    def verification(
        self,
        echo: str | None = None,
        *,
        timestamp: str | int | None = None,
        nonce: str | None = None,
        signature: str | None = None,
        receive_id: str | None = None,
    ) -> SignedRequest:
        """A URL-verification GET; the app must answer with ``echo`` (random digits by default).

        The keywords override one field each, as for :meth:`callback`.
        """
        plaintext = (echo if echo is not None else str(secrets.randbelow(10**19))).encode()
        return self._signed("GET", plaintext, self.format, timestamp, nonce, signature, receive_id)

    def callback(
        self,
        plaintext: str | bytes | Message,
        *,
        timestamp: str | int | None = None,
        nonce: str | None = None,
        signature: str | None = None,
        receive_id: str | None = None,
        format: EnvelopeFormat | None = None,
    ) -> SignedRequest:
        """A callback POST carrying ``plaintext`` (a document, or a parsed message).

        Every keyword overrides exactly one thing: ``signature`` replaces the
        correct one, ``receive_id`` encrypts for another id, ``timestamp`` and
        ``nonce`` replace fresh ones, ``format`` the signer's envelope format.

        :raises ValueError: ``plaintext`` is a message without a ``raw`` document
            (build messages with :func:`~flask_wecom.messages.parse_message`).
        """
        if isinstance(plaintext, Message):
            plaintext = _document_of(plaintext)
        data = plaintext.encode("utf-8") if isinstance(plaintext, str) else plaintext
        envelope = self.format if format is None else format
        return self._signed("POST", data, envelope, timestamp, nonce, signature, receive_id)

    def resend(self, request: SignedRequest) -> SignedRequest:
        """The same plaintext again with a fresh timestamp and nonce: WeCom's retry.

        WeCom sends a callback again when no 200 arrives within 5 seconds, three
        sends in all; a retry carries the identical plaintext (same MsgId).
        """
        return self._signed(
            request.method, request.plaintext, request.format, None, None, None, None
        )

    def _signed(
        self,
        method: str,
        plaintext: bytes,
        format: EnvelopeFormat,
        timestamp: str | int | None,
        nonce: str | None,
        forged_signature: str | None,
        receive_id: str | None,
    ) -> SignedRequest:
        """Encrypt ``plaintext``, then build the request around the ciphertext."""
        return self.with_ciphertext(
            self.crypto.encrypt(plaintext, receive_id),
            method=method,
            format=format,
            timestamp=timestamp,
            nonce=nonce,
            signature=forged_signature,
            plaintext=plaintext,
        )

    def with_ciphertext(
        self,
        encrypted: str,
        *,
        method: str = "POST",
        format: EnvelopeFormat | None = None,
        timestamp: str | int | None = None,
        nonce: str | None = None,
        signature: str | None = None,
        plaintext: bytes = b"",
    ) -> SignedRequest:
        """A request carrying ``encrypted`` as its ciphertext (``echostr`` for GET), signed.

        The one place a request is built. Give any string to test how an app treats
        a correctly signed but malformed ciphertext; ``signature`` forges the signature.
        """
        format = self.format if format is None else format
        forged_signature = signature
        stamp = str(int(self.clock()) if timestamp is None else timestamp)
        nonce = str(secrets.randbelow(10**10)) if nonce is None else nonce
        if forged_signature is None:
            msg_signature = sign(self.crypto.token, stamp, nonce, encrypted)
        else:
            msg_signature = forged_signature
        query = {"msg_signature": msg_signature, "timestamp": stamp, "nonce": nonce}
        if method == "GET":
            query["echostr"] = encrypted
            body, content_type = "", ""
        elif format == "json":
            body, content_type = json.dumps({"encrypt": encrypted}), "application/json"
        else:
            body = (
                f"<xml><ToUserName>{cdata(self.to_user)}</ToUserName>"
                f"<Encrypt><![CDATA[{encrypted}]]></Encrypt>"
                "<AgentID><![CDATA[1000002]]></AgentID></xml>"
            )
            content_type = "text/xml"
        return SignedRequest(
            method=method,
            query_string=urlencode(query, quote_via=quote),
            body=body.encode("utf-8"),
            content_type=content_type,
            plaintext=plaintext,
            timestamp=stamp,
            nonce=nonce,
            format=format,
        )

    # -- shortcuts ------------------------------------------------------------------------

    def message(
        self, msg_type: str, fields: Mapping[str, XmlValue], **overrides: Any
    ) -> SignedRequest:
        """A self-built-app message of ``msg_type`` with a fresh MsgId and the given fields."""
        head: dict[str, XmlValue] = {
            "FromUserName": fields.get("FromUserName", "zhangsan"),
            "CreateTime": int(self.clock()),
        }
        body = {
            **head,
            **fields,
            "MsgId": self._msg_id(),
            "AgentID": fields.get("AgentID", 1000002),
        }
        return self.callback(app_message_xml(msg_type, body, to_user=self.to_user), **overrides)

    def text(self, content: str, *, from_user: str = "zhangsan", **overrides: Any) -> SignedRequest:
        """A text message (文本消息) from ``from_user``."""
        return self.message("text", {"FromUserName": from_user, "Content": content}, **overrides)

    def event(
        self,
        event: str,
        fields: Mapping[str, XmlValue] | None = None,
        *,
        from_user: str = "zhangsan",
        **overrides: Any,
    ) -> SignedRequest:
        """An event (事件) named ``event`` with extra ``fields`` (e.g. ``{"EventKey": "K"}``)."""
        body: dict[str, XmlValue] = {
            "FromUserName": from_user,
            "CreateTime": int(self.clock()),
            "Event": event,
            "AgentID": 1000002,
            **(fields or {}),
        }
        return self.callback(app_message_xml("event", body, to_user=self.to_user), **overrides)

    def click(self, key: str, **overrides: Any) -> SignedRequest:
        """A custom-menu click event (点击菜单) with EventKey ``key``."""
        return self.event("click", {"EventKey": key}, **overrides)

    def subscribe(self, **overrides: Any) -> SignedRequest:
        """A subscribe event (成员关注)."""
        return self.event("subscribe", {"EventKey": ""}, **overrides)

    def change_contact(
        self, change_type: str, fields: Mapping[str, XmlValue], **overrides: Any
    ) -> SignedRequest:
        """A contact change event (通讯录变更), e.g. ``("delete_user", {"UserID": "lisi"})``."""
        return self.event(
            "change_contact", {"ChangeType": change_type, **fields}, from_user="sys", **overrides
        )

    def aibot_text(
        self,
        content: str,
        *,
        from_user: str = "zhangsan",
        chattype: str = "single",
        **overrides: Any,
    ) -> SignedRequest:
        """An AI-bot text message (智能机器人): JSON plaintext with a fresh msgid, JSON envelope.

        AI bots use the receive id ``""``; give the signer that receive id.
        """
        payload = aibot_payload(
            "text",
            {"text": {"content": content}},
            msgid=str(self._msg_id()),
            aibotid="AIBOTID",
            chattype=chattype,
            **{"from": {"userid": from_user}},
            response_url="",
        )
        overrides.setdefault("format", "json")
        return self.callback(payload, **overrides)

    def _msg_id(self) -> str:
        """A fresh MsgId: text, as every MsgId is (WeCom sends non-numeric ones too)."""
        self._next_msg_id += 1
        return str(self._next_msg_id)

    # -- replies --------------------------------------------------------------------------

    def decrypt_reply(
        self, body: bytes | str, request: SignedRequest | None = None
    ) -> bytes | None:
        """Check and decrypt a reply envelope (XML or JSON); ``None`` for the empty reply.

        :param request: the callback it answers; the reply must be signed with its
            nonce. Leave out to check only the envelope's own signature (e.g. a
            reply captured from a log).
        :raises SignatureError: the signature is wrong, or not made with the request's nonce.
        :raises ParseError: the body is not a reply envelope (no ciphertext or no signature).
        :raises DecryptError: (or a subclass) the ciphertext is malformed or for another id.
        """
        if not body:
            return None
        envelope = read_reply_envelope(body)
        if request is not None and envelope.nonce != request.nonce:
            raise SignatureError("the reply is not signed with the callback's nonce")
        self.crypto.check_signature(
            envelope.signature, envelope.timestamp, envelope.nonce, envelope.encrypted
        )
        plaintext, _ = self.crypto.decrypt(envelope.encrypted)
        return plaintext

    def open_reply(self, body: bytes | str, request: SignedRequest | None = None) -> Reply | None:
        """Check, decrypt and parse a reply into a :class:`~flask_wecom.replies.Reply`.

        See :meth:`decrypt_reply`; ``None`` for the empty reply.

        :raises ParseError: the plaintext is not a reply flask_wecom can read.
        """
        plaintext = self.decrypt_reply(body, request)
        return None if plaintext is None else parse_reply(plaintext)


def _document_of(message: Message) -> str:
    """The plaintext document of a parsed message (its ``raw``, written back out)."""
    if not message.raw:
        raise ValueError(
            "the message has no raw document; build it with parse_message() or pass the plaintext"
        )
    if message.is_aibot:
        return json.dumps(message.raw, ensure_ascii=False)
    raw = dict(message.raw)
    return "<xml>" + xml_elements(raw) + "</xml>"


@dataclass(frozen=True)
class CallbackResponse:
    """What the app answered to one callback."""

    #: The HTTP status code.
    status: int
    #: The raw response body.
    body: bytes
    #: The decrypted reply plaintext, or None for an empty body or a non-2xx answer.
    plaintext: bytes | None
    #: The parsed reply, or None.
    reply: Reply | None


class WeComTestClient:
    """Sends signed callbacks to an app and decrypts what it answers.

    Usage::

        client = WeComTestClient(app, CallbackSigner(token, encoding_aes_key, corp_id))
        assert client.send_text("hello").reply.content == "echo: hello"
        assert client.send(client.signer.text("hi", signature="0" * 40)).status == 403

    :param app: a WSGI app (a Flask app, ``app.wsgi_app``, a Django handler ...), an ASGI
        app (FastAPI, Starlette, :class:`~flask_wecom.asgi.WeComASGIMiddleware` ...), both
        called in process, or the base URL of a live server (``"http://127.0.0.1:8000"``).
    :param signer: the credentials to sign with.
    :param path: the callback path.
    """

    def __init__(
        self, app: WSGIApplication | ASGIApp | str, signer: CallbackSigner, path: str = "/wecom"
    ) -> None:
        self.signer = signer
        self.path = path
        self._open: Callable[[SignedRequest, str], tuple[int, bytes]] = (
            _HTTPOpener(app)
            if isinstance(app, str)
            else _ASGIOpener(app)  # type: ignore[arg-type]
            if _is_asgi(app)
            else _WSGIOpener(app)  # type: ignore[arg-type]
        )

    def send(self, request: SignedRequest) -> CallbackResponse:
        """Send ``request``; decrypt and parse a 2xx reply."""
        status, body = self._open(request, self.path)
        # Only a 2xx envelope is a reply; suites answer a plain "success" instead.
        enveloped = body.lstrip()[:1] in (b"<", b"{")
        ok = 200 <= status < 300 and request.method == "POST" and enveloped
        plaintext = self.signer.decrypt_reply(body, request) if ok else None
        reply = parse_reply(plaintext) if plaintext else None
        return CallbackResponse(status, body, plaintext, reply)

    def verify_url(self, echo: str | None = None) -> CallbackResponse:
        """Send a URL verification; ``.body`` is the echo the app answered."""
        return self.send(self.signer.verification(echo))

    def send_text(self, content: str, **kwargs: Any) -> CallbackResponse:
        """Send a text message; see :meth:`CallbackSigner.text`."""
        return self.send(self.signer.text(content, **kwargs))

    def send_event(
        self, event: str, fields: Mapping[str, XmlValue] | None = None, **kwargs: Any
    ) -> CallbackResponse:
        """Send an event; see :meth:`CallbackSigner.event`."""
        return self.send(self.signer.event(event, fields, **kwargs))

    def click(self, key: str, **kwargs: Any) -> CallbackResponse:
        """Send a menu click; see :meth:`CallbackSigner.click`."""
        return self.send(self.signer.click(key, **kwargs))

    def subscribe(self, **kwargs: Any) -> CallbackResponse:
        """Send a subscribe event; see :meth:`CallbackSigner.subscribe`."""
        return self.send(self.signer.subscribe(**kwargs))

    def change_contact(
        self, change_type: str, fields: Mapping[str, XmlValue], **kwargs: Any
    ) -> CallbackResponse:
        """Send a contact change event; see :meth:`CallbackSigner.change_contact`."""
        return self.send(self.signer.change_contact(change_type, fields, **kwargs))

    def aibot_text(self, content: str, **kwargs: Any) -> CallbackResponse:
        """Send an AI-bot text message; see :meth:`CallbackSigner.aibot_text`."""
        return self.send(self.signer.aibot_text(content, **kwargs))

    def send_message(self, message: Message) -> CallbackResponse:
        """Send a parsed message again (e.g. one from ``parse_message`` of a captured plaintext)."""
        return self.send(self.signer.callback(message))


def _is_asgi(app: object) -> bool:
    """ASGI apps are coroutine functions of (scope, receive, send); WSGI apps are not."""
    call = app if inspect.isfunction(app) or inspect.ismethod(app) else type(app).__call__
    return inspect.iscoroutinefunction(call)


def _headers(request: SignedRequest) -> dict[str, str]:
    return {"Content-Type": request.content_type} if request.content_type else {}


class _WSGIOpener:
    """Sends requests to a WSGI app in process (werkzeug's test client)."""

    def __init__(self, app: WSGIApplication) -> None:
        from werkzeug.test import Client  # werkzeug only when a WSGI test client is wanted

        self._client = Client(app)

    def __call__(self, request: SignedRequest, path: str) -> tuple[int, bytes]:
        response = self._client.open(
            request.url(path), method=request.method, data=request.body, headers=_headers(request)
        )
        return response.status_code, response.get_data()


class _ASGIOpener:
    """Sends requests to an ASGI app in process, on an event loop of its own that keeps
    running between requests (so streams and late replies go on in the background)."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app
        self._loop = asyncio.new_event_loop()
        threading.Thread(target=self._loop.run_forever, name="wecom-test-asgi", daemon=True).start()

    def __call__(self, request: SignedRequest, path: str) -> tuple[int, bytes]:
        future = asyncio.run_coroutine_threadsafe(self._exchange(request, path), self._loop)
        return future.result(timeout=30)

    async def _exchange(self, request: SignedRequest, path: str) -> tuple[int, bytes]:
        pending = [{"type": "http.request", "body": request.body, "more_body": False}]
        answer: dict[str, Any] = {"status": 0, "body": b""}

        async def receive() -> dict[str, Any]:
            if pending:
                return pending.pop()
            await asyncio.Event().wait()  # nothing more to read: wait like a quiet client
            raise AssertionError("unreachable")

        async def send(message: Mapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                answer["status"] = message["status"]
            elif message["type"] == "http.response.body":
                answer["body"] += message.get("body", b"")

        headers = [(k.lower().encode(), v.encode()) for k, v in _headers(request).items()]
        headers.append((b"content-length", str(len(request.body)).encode()))
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": request.method,
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": request.query_string.encode(),
            "headers": headers,
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 80),
        }
        await self._app(scope, receive, send)
        return answer["status"], answer["body"]


class _HTTPOpener:
    """Sends requests to a live server over HTTP (the standard library's client)."""

    def __init__(self, base_url: str) -> None:
        self._base = base_url.rstrip("/")

    def __call__(self, request: SignedRequest, path: str) -> tuple[int, bytes]:
        from urllib.error import HTTPError
        from urllib.request import Request, urlopen

        http_request = Request(  # noqa: S310 (a URL the test gave, http or https)
            self._base + request.url(path),
            data=request.body if request.method == "POST" else None,
            method=request.method,
            headers=_headers(request),
        )
        try:
            with urlopen(http_request, timeout=30) as response:  # noqa: S310
                return response.status, response.read()
        except HTTPError as error:
            return error.code, error.read()
