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
``timestamp=1`` (stale), ``receive_id="someone-else"``.

:class:`WeComTestClient` wraps any WSGI app and does the sending for you; the
pytest plugin (:mod:`flask_wecom.pytest_plugin`) hands one to your tests.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

from .crypto import WeComCrypto, signature
from .envelope import EnvelopeFormat, extract_encrypted
from .errors import SignatureError
from .messages import Message
from .replies import Reply, parse_reply
from .safe_xml import cdata, parse_xml

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

__all__ = [
    "CallbackResponse",
    "CallbackSigner",
    "SignedRequest",
    "WeComTestClient",
    "aibot_payload",
    "app_message_xml",
]

_FIRST_MSG_ID = 7_300_000_000_000_000_001  # above 2**53, like real MsgIds


def app_message_xml(msg_type: str, fields: Mapping[str, object], *, to_user: str) -> str:
    """Write a self-built-app callback plaintext: ``<xml>`` with ToUserName, MsgType and ``fields``.

    Values are written in element order; mappings become nested elements, lists
    repeat their element, numbers are written bare and strings in CDATA.
    """
    return "<xml>" + _elements({"ToUserName": to_user, **fields, "MsgType": msg_type}) + "</xml>"


def _elements(fields: Mapping[str, object]) -> str:
    parts = []
    for name, value in fields.items():
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, Mapping):
                inner = _elements(item)
            elif isinstance(item, int):
                inner = str(item)
            else:
                inner = cdata(str(item))
            parts.append(f"<{name}>{inner}</{name}>")
    return "".join(parts)


def aibot_payload(msgtype: str, body: Mapping[str, Any], **common: Any) -> str:
    """Write an AI-bot (智能机器人) callback plaintext: the JSON of doc 100719."""
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
    #: The timestamp and nonce used; a reply is signed with the same nonce.
    timestamp: str
    nonce: str

    def url(self, path: str) -> str:
        """``path`` with this request's query string appended."""
        return f"{path}?{self.query_string}"


class CallbackSigner:
    """Makes callbacks signed and encrypted with one credential set.

    :param token: the Token.
    :param encoding_aes_key: the 43-character EncodingAESKey.
    :param receive_id: the CorpID (apps), SuiteID (suite commands) or ``""`` (AI bots).
    :param format: ``"xml"`` envelopes (apps, suites) or ``"json"`` (AI bots).
    :param clock: the time callbacks are stamped with; defaults to :func:`time.time`.
    :param to_user: ``ToUserName`` written into app messages; defaults to ``receive_id``.
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
    ) -> None:
        self.crypto = WeComCrypto(token, encoding_aes_key, receive_id)
        self.format: EnvelopeFormat = format
        self.clock = clock
        self.to_user = receive_id if to_user is None else to_user
        self._next_msg_id = _FIRST_MSG_ID

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
        """A URL-verification GET; the app must answer with ``echo`` (random digits by default)."""
        plaintext = (echo if echo is not None else str(secrets.randbelow(10**19))).encode()
        echostr = self.crypto.encrypt(plaintext, receive_id)
        return self._signed("GET", plaintext, echostr, timestamp, nonce, signature)

    def callback(
        self,
        plaintext: str | bytes | Message,
        *,
        timestamp: str | int | None = None,
        nonce: str | None = None,
        signature: str | None = None,
        receive_id: str | None = None,
    ) -> SignedRequest:
        """A callback POST carrying ``plaintext`` (a document, or a parsed message's ``.raw``).

        Every keyword overrides exactly one thing: ``signature`` replaces the
        correct one, ``receive_id`` encrypts for another id, ``timestamp`` and
        ``nonce`` replace fresh ones.
        """
        if isinstance(plaintext, Message):
            plaintext = _document_of(plaintext)
        data = plaintext.encode("utf-8") if isinstance(plaintext, str) else plaintext
        encrypted = self.crypto.encrypt(data, receive_id)
        return self._signed("POST", data, encrypted, timestamp, nonce, signature)

    def _signed(
        self,
        method: str,
        plaintext: bytes,
        encrypted: str,
        timestamp: str | int | None,
        nonce: str | None,
        forged: str | None,
    ) -> SignedRequest:
        stamp = str(int(self.clock()) if timestamp is None else timestamp)
        nonce = str(secrets.randbelow(10**10)) if nonce is None else nonce
        sig = signature(self.crypto.token, stamp, nonce, encrypted) if forged is None else forged
        query = {"msg_signature": sig, "timestamp": stamp, "nonce": nonce}
        if method == "GET":
            return SignedRequest(
                method,
                urlencode({**query, "echostr": encrypted}, quote_via=quote),
                b"",
                "",
                plaintext,
                stamp,
                nonce,
            )
        if self.format == "json":
            body, content_type = json.dumps({"encrypt": encrypted}), "application/json"
        else:
            body = (
                f"<xml><ToUserName>{cdata(self.to_user)}</ToUserName>"
                f"<Encrypt><![CDATA[{encrypted}]]></Encrypt>"
                "<AgentID><![CDATA[1000002]]></AgentID></xml>"
            )
            content_type = "text/xml"
        return SignedRequest(
            method,
            urlencode(query, quote_via=quote),
            body.encode("utf-8"),
            content_type,
            plaintext,
            stamp,
            nonce,
        )

    # -- shortcuts ------------------------------------------------------------------------

    def message(
        self, msg_type: str, fields: Mapping[str, object], **overrides: Any
    ) -> SignedRequest:
        """A self-built-app message of ``msg_type`` with a fresh MsgId and the given fields."""
        head: dict[str, object] = {
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
        fields: Mapping[str, object] | None = None,
        *,
        from_user: str = "zhangsan",
        **overrides: Any,
    ) -> SignedRequest:
        """An event (事件) named ``event`` with extra ``fields`` (e.g. ``{"EventKey": "K"}``)."""
        body: dict[str, object] = {
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
        self, change_type: str, fields: Mapping[str, object], **overrides: Any
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
        """An AI-bot text message (智能机器人), as a JSON plaintext with a fresh msgid."""
        payload = aibot_payload(
            "text",
            {"text": {"content": content}},
            msgid=str(self._msg_id()),
            aibotid="AIBOTID",
            chattype=chattype,
            **{"from": {"userid": from_user}},
            response_url="",
        )
        return self.callback(payload, **overrides)

    def _msg_id(self) -> int:
        self._next_msg_id += 1
        return self._next_msg_id

    # -- replies --------------------------------------------------------------------------

    def decrypt_reply(self, body: bytes | str, request: SignedRequest) -> bytes | None:
        """Check and decrypt a reply envelope; ``None`` for the empty reply.

        :raises SignatureError: the envelope is not signed, or not with the request's nonce.
        """
        if not body:
            return None
        encrypted = extract_encrypted(body)
        fields = _reply_fields(body)
        if fields["nonce"] != request.nonce:
            raise SignatureError("the reply is not signed with the callback's nonce")
        self.crypto.check_signature(
            fields["msgsignature"], fields["timestamp"], request.nonce, encrypted
        )
        plaintext, _ = self.crypto.decrypt(encrypted)
        return plaintext

    def open_reply(self, body: bytes | str, request: SignedRequest) -> Reply | None:
        """Check, decrypt and parse a reply into a :class:`~flask_wecom.replies.Reply`."""
        plaintext = self.decrypt_reply(body, request)
        return None if plaintext is None else parse_reply(plaintext)


def _document_of(message: Message) -> str:
    if message.is_aibot:
        return json.dumps(message.raw, ensure_ascii=False)
    raw = dict(message.raw)
    return "<xml>" + _elements(raw) + "</xml>"


def _reply_fields(body: bytes | str) -> dict[str, str]:
    """MsgSignature, TimeStamp and Nonce of an XML or JSON reply envelope, as text."""
    text = body.decode("utf-8") if isinstance(body, bytes) else body
    if text.lstrip().startswith("{"):
        document = json.loads(text)
        return {k: str(document.get(k, "")) for k in ("msgsignature", "timestamp", "nonce")}
    root = parse_xml(text)
    return {
        "msgsignature": root.findtext("MsgSignature") or "",
        "timestamp": root.findtext("TimeStamp") or "",
        "nonce": root.findtext("Nonce") or "",
    }


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
    """Sends signed callbacks to a WSGI app in-process and decrypts what it answers.

    :param app: any WSGI app (a Flask app, ``app.wsgi_app``, a Django handler ...)
        with the WeCom middleware in its stack.
    :param signer: the credentials to sign with.
    :param path: the callback path.
    """

    def __init__(self, app: WSGIApplication, signer: CallbackSigner, path: str = "/wecom") -> None:
        from werkzeug.test import Client  # werkzeug only when a test client is wanted

        self.signer = signer
        self.path = path
        self._client = Client(app)

    def send(self, request: SignedRequest) -> CallbackResponse:
        """Send ``request``; decrypt and parse a 2xx reply."""
        response = self._client.open(
            request.url(self.path),
            method=request.method,
            data=request.body,
            headers={"Content-Type": request.content_type} if request.content_type else {},
        )
        body = response.get_data()
        ok = 200 <= response.status_code < 300 and request.method == "POST"
        plaintext = self.signer.decrypt_reply(body, request) if ok else None
        reply = parse_reply(plaintext) if plaintext else None
        return CallbackResponse(response.status_code, body, plaintext, reply)

    def verify_url(self, echo: str | None = None) -> CallbackResponse:
        """Send a URL verification; ``.body`` is the echo the app answered."""
        return self.send(self.signer.verification(echo))

    def send_text(self, content: str, **kwargs: Any) -> CallbackResponse:
        """Send a text message; see :meth:`CallbackSigner.text`."""
        return self.send(self.signer.text(content, **kwargs))

    def send_event(
        self, event: str, fields: Mapping[str, object] | None = None, **kwargs: Any
    ) -> CallbackResponse:
        """Send an event; see :meth:`CallbackSigner.event`."""
        return self.send(self.signer.event(event, fields, **kwargs))

    def click(self, key: str, **kwargs: Any) -> CallbackResponse:
        """Send a menu click; see :meth:`CallbackSigner.click`."""
        return self.send(self.signer.click(key, **kwargs))

    def send_message(self, message: Message) -> CallbackResponse:
        """Send a parsed message again (e.g. one from ``parse_message`` of a captured plaintext)."""
        return self.send(self.signer.callback(message))
