"""WSGI middleware: verify WeCom callbacks, decrypt them into the environ, encrypt the replies.

Wraps any WSGI application (plain WSGI, Flask's ``app.wsgi_app``, Django's
``get_wsgi_application()``)::

    crypto = WeComCrypto(token, encoding_aes_key, receive_id=corp_id)
    app = WeComMiddleware(app, crypto, path="/wecom")

For a request to a configured path the middleware:

* **GET** (URL verification): checks ``msg_signature`` over ``echostr``, decrypts
  it and answers ``200 text/plain`` with the plaintext. The app is not called.
* **POST**: reads the body under a size cap, checks the timestamp window and the
  signature before parsing anything else, decrypts, parses, and calls the app
  with ``wsgi.input`` holding the plaintext and these environ keys:

  ``wecom.plaintext``  the decrypted document (bytes)
  ``wecom.message``    the parsed :class:`~flask_wecom.messages.Message`
  ``wecom.endpoint``   the matched :class:`Endpoint`
  ``wecom.credential`` index of the credential set that verified it (0 = first)
  ``wecom.receive_id`` the receive id inside the ciphertext
  ``wecom.orig``       the original ``body``, ``CONTENT_TYPE`` and ``CONTENT_LENGTH``

  A 2xx response with a body is taken as the plaintext reply and sent back
  encrypted and signed; an empty body stays an empty 200 (WeCom's "no passive
  reply"); any other status passes through unchanged.

Bad input is refused with 400 (malformed), 403 (signature, timestamp), 405
(method) or 413 (body too large), never a 500, and logged once at WARNING
without plaintext or keys. Other paths pass through untouched. Imports nothing
from any web framework.
"""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import unquote

from .crypto import Decrypted, WeComCrypto
from .dedup import Claim, Deduplicator, dedup_key
from .envelope import EnvelopeFormat, extract_encrypted
from .errors import (
    ParseError,
    PayloadTooLarge,
    SignatureError,
    TimestampError,
    WeComError,
)
from .messages import Message, parse_message

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

__all__ = ["Endpoint", "Outcome", "OutcomeHook", "WeComMiddleware"]

logger = logging.getLogger("flask_wecom")

#: Default request body cap. WeCom callbacks are a few KB; the spec has no larger payload.
DEFAULT_MAX_BODY = 256 * 1024
#: Default replay window, seconds either side of the clock.
DEFAULT_TOLERANCE = 300.0

_CONTENT_TYPES = {
    "xml": "application/xml; charset=utf-8",
    "json": "application/json; charset=utf-8",
}


@dataclass(frozen=True)
class Endpoint:
    """One callback URL with its credentials.

    :param path: the ``PATH_INFO`` it answers, e.g. ``"/wecom"``.
    :param credentials: one :class:`WeComCrypto`, or several during a key
        rotation (newest first): the first whose signature matches wins.
    :param format: the reply envelope: ``"xml"`` for apps and suites, ``"json"``
        for AI bots (智能机器人).
    :param name: a label for logs and metrics; defaults to the path.
    :param acknowledge: answer every accepted callback with this literal, unencrypted
        text instead of the app's reply: third-party suite command callbacks
        (指令回调) must be answered ``"success"``.
    """

    path: str
    credentials: tuple[WeComCrypto, ...]
    format: EnvelopeFormat = "xml"
    name: str = ""
    acknowledge: str = ""

    def __init__(
        self,
        path: str,
        credentials: WeComCrypto | Sequence[WeComCrypto],
        format: EnvelopeFormat = "xml",
        name: str = "",
        acknowledge: str = "",
    ) -> None:
        creds = (credentials,) if isinstance(credentials, WeComCrypto) else tuple(credentials)
        if not path.startswith("/"):
            raise ValueError(f"endpoint path must start with '/', got {path!r}")
        if not creds or not all(isinstance(c, WeComCrypto) for c in creds):
            raise ValueError("an endpoint needs one WeComCrypto or a non-empty sequence of them")
        if format not in _CONTENT_TYPES:
            raise ValueError(f"format must be 'xml' or 'json', got {format!r}")
        object.__setattr__(self, "path", path)
        object.__setattr__(self, "credentials", creds)
        object.__setattr__(self, "format", format)
        object.__setattr__(self, "name", name or path)
        object.__setattr__(self, "acknowledge", acknowledge)


class Outcome(NamedTuple):
    """What happened to one request to an endpoint, handed to every outcome hook."""

    #: The endpoint's name.
    endpoint: str
    #: ``"verified"`` (URL check answered), ``"accepted"`` (the app ran), ``"replayed"`` (a
    #: retry got the stored reply), ``"waited"`` (a retry found the first still running and
    #: got an empty answer) or ``"refused"``.
    outcome: str
    #: The HTTP status sent.
    status: int
    #: For refusals, the error's ``reason`` (``"signature"``, ``"timestamp"``, ...).
    reason: str | None = None
    #: Index of the credential set that verified the request, if any.
    credential: int | None = None
    #: Seconds spent in the wrapped app, for accepted callbacks.
    handler_seconds: float | None = None
    #: The retry dedup verdict: ``"first"``, ``"replay"``, ``"waited"``, ``"bypass"``
    #: (store down), or None (dedup off, or not a callback).
    dedup: str | None = None


#: An outcome hook: called once per request to an endpoint; its errors are logged and ignored.
OutcomeHook = Callable[[Outcome], None]


def _credential(endpoint: Endpoint, index: int, fallback: WeComCrypto) -> WeComCrypto:
    """The credential set that encrypted a stored reply (it may have been rotated out)."""
    return endpoint.credentials[index] if index < len(endpoint.credentials) else fallback


def _reply(
    endpoint: Endpoint, crypto: WeComCrypto, nonce: str, encrypted: str
) -> tuple[bytes, list[tuple[str, str]]]:
    """The body and headers answering a callback whose reply is ``encrypted`` ("" for none)."""
    if endpoint.acknowledge:
        return endpoint.acknowledge.encode("utf-8"), [("Content-Type", "text/plain; charset=utf-8")]
    if not encrypted:
        return b"", []
    envelope = crypto.seal(encrypted, nonce, format=endpoint.format)
    return envelope.encode("utf-8"), [("Content-Type", _CONTENT_TYPES[endpoint.format])]


class _Refusal(Exception):
    """A request the middleware answers itself with a 4xx status."""

    def __init__(self, status: int, error: WeComError) -> None:
        super().__init__(error.reason)
        self.status = status
        self.error = error


def _status_for(error: WeComError) -> int:
    if isinstance(error, PayloadTooLarge):
        return 413
    if isinstance(error, SignatureError):
        return 403
    return 400


@dataclass
class _Request:
    """The verified parts of one callback, kept while the app runs."""

    endpoint: Endpoint
    crypto: WeComCrypto
    credential: int
    nonce: str
    decrypted: Decrypted
    message: Message | None = None


class WeComMiddleware:
    """WSGI middleware that speaks WeCom's callback protocol on chosen paths.

    :param app: the WSGI application to wrap.
    :param crypto: credentials for a single endpoint at ``path`` (one
        :class:`WeComCrypto`, or several during a key rotation); leave out when
        passing ``endpoints``.
    :param path: the single endpoint's path.
    :param format: the single endpoint's reply envelope, ``"xml"`` or ``"json"``.
    :param endpoints: further :class:`Endpoint` objects, each on its own path.
    :param max_body: largest request body accepted, in bytes (413 above).
    :param tolerance: seconds the ``timestamp`` may differ from the clock, either way.
    :param clock: the current time in seconds; defaults to :func:`time.time`.
    :param hooks: called with an :class:`Outcome` after each endpoint request.
    :param dedup: retry deduplication (:mod:`flask_wecom.dedup`): True (the default)
        for a per-process memory store, a :class:`~flask_wecom.dedup.Deduplicator`
        (e.g. over Redis, shared by every worker), or False for none.
    """

    def __init__(
        self,
        app: WSGIApplication,
        crypto: WeComCrypto | Sequence[WeComCrypto] | None = None,
        *,
        path: str = "/wecom",
        format: EnvelopeFormat = "xml",
        endpoints: Iterable[Endpoint] = (),
        max_body: int = DEFAULT_MAX_BODY,
        tolerance: float = DEFAULT_TOLERANCE,
        clock: Callable[[], float] = time.time,
        hooks: Iterable[OutcomeHook] = (),
        dedup: Deduplicator | bool = True,
    ) -> None:
        if max_body < 1:
            raise ValueError("max_body must be a positive number of bytes")
        if tolerance <= 0:
            raise ValueError("tolerance must be a positive number of seconds")
        self.app = app
        self.max_body = max_body
        self.tolerance = tolerance
        self.clock = clock
        #: Retry dedup (None when off); ``dedup=True`` gives a per-process memory store.
        self.dedup: Deduplicator | None = (
            Deduplicator() if dedup is True else dedup if isinstance(dedup, Deduplicator) else None
        )
        #: Outcome hooks; append to add one.
        self.hooks: list[OutcomeHook] = list(hooks)
        self._endpoints: dict[str, Endpoint] = {}
        if crypto is not None:
            self.add_endpoint(Endpoint(path, crypto, format))
        for endpoint in endpoints:
            self.add_endpoint(endpoint)
        if not self._endpoints:
            raise ValueError("WeComMiddleware needs crypto or at least one endpoint")

    @property
    def endpoints(self) -> tuple[Endpoint, ...]:
        """The mounted endpoints."""
        return tuple(self._endpoints.values())

    def add_endpoint(self, endpoint: Endpoint) -> None:
        """Mount another endpoint; its path must be free."""
        if endpoint.path in self._endpoints:
            raise ValueError(f"an endpoint is already mounted at {endpoint.path!r}")
        self._endpoints[endpoint.path] = endpoint

    # -- WSGI -----------------------------------------------------------------------------

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        endpoint = self._endpoints.get(environ.get("PATH_INFO") or "/")
        if endpoint is None:
            return self.app(environ, start_response)
        method = environ.get("REQUEST_METHOD", "GET").upper()
        try:
            if method == "GET":
                return self._verify_url(endpoint, environ, start_response)
            if method == "POST":
                return self._callback(endpoint, environ, start_response)
            return self._answer(
                endpoint,
                start_response,
                Outcome(endpoint.name, "refused", 405, "method"),
                b"method not allowed\n",
                [("Allow", "GET, POST")],
            )
        except _Refusal as refusal:
            return self._refuse(endpoint, environ, start_response, refusal)

    def _verify_url(
        self, endpoint: Endpoint, environ: WSGIEnvironment, start_response: StartResponse
    ) -> Iterable[bytes]:
        query = self._query(environ)
        echostr = query.get("echostr")
        if not echostr:
            raise _Refusal(400, ParseError("URL verification without echostr"))
        request = self._open(endpoint, query, echostr)
        echo = request.decrypted.plaintext
        try:
            echo.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _Refusal(400, ParseError("the echostr plaintext is not UTF-8")) from exc
        outcome = Outcome(endpoint.name, "verified", 200, credential=request.credential)
        return self._answer(
            endpoint, start_response, outcome, echo, [("Content-Type", "text/plain; charset=utf-8")]
        )

    def _callback(
        self, endpoint: Endpoint, environ: WSGIEnvironment, start_response: StartResponse
    ) -> Iterable[bytes]:
        query = self._query(environ)
        body = self._read_body(environ)
        try:
            encrypted = extract_encrypted(body)
        except WeComError as exc:
            raise _Refusal(_status_for(exc), exc) from exc
        request = self._open(endpoint, query, encrypted)
        try:
            request.message = parse_message(request.decrypted.plaintext)
        except WeComError as exc:
            raise _Refusal(400, exc) from exc
        claim = self._claim(endpoint, request)
        if claim is not None and claim.state in ("replay", "waited"):
            crypto = _credential(endpoint, claim.credential, request.crypto)
            reply, headers = _reply(endpoint, crypto, request.nonce, claim.reply)
            verdict = "replayed" if claim.state == "replay" else "waited"
            return self._answer(
                endpoint,
                start_response,
                Outcome(
                    endpoint.name, verdict, 200, credential=request.credential, dedup=claim.state
                ),
                reply,
                headers,
            )
        started = time.perf_counter()
        try:
            status, headers, reply_body = self._run_app(environ, request, body, claim)
        except BaseException:
            self._settle(claim, None)
            raise
        elapsed = time.perf_counter() - started
        if status.startswith("2"):
            encrypted = self._encrypt_reply(endpoint, request, reply_body)
            self._settle(claim, encrypted, request.credential)
            reply_body, reply_headers = _reply(endpoint, request.crypto, request.nonce, encrypted)
            if reply_body:  # the app's own headers stay; only the body's type changes
                headers = [(k, v) for k, v in headers if k.lower() != "content-type"]
                headers += reply_headers
        else:
            self._settle(claim, None)
        outcome = Outcome(
            endpoint.name,
            "accepted",
            int(status[:3]),
            credential=request.credential,
            handler_seconds=elapsed,
            dedup=claim.state if claim else None,
        )
        return self._answer(endpoint, start_response, outcome, reply_body, headers, status)

    def _claim(self, endpoint: Endpoint, request: _Request) -> Claim | None:
        message = request.message
        if not self.dedup or message is None:
            return None
        if message.is_aibot and message.type == "stream":
            return None  # a stream refresh reads the latest state; replaying an old one is wrong
        key = dedup_key(endpoint.name, message, request.decrypted.plaintext)
        return self.dedup.claim(key)

    def _settle(self, claim: Claim | None, encrypted: str | None, credential: int = 0) -> None:
        """Record a first arrival's encrypted reply, or release its claim (``encrypted=None``)."""
        if claim is None or self.dedup is None:
            return
        if encrypted is None:
            self.dedup.release(claim)
        else:
            self.dedup.complete(claim, encrypted, credential)

    def _encrypt_reply(self, endpoint: Endpoint, request: _Request, body: bytes) -> str:
        """The app's reply, encrypted for the sender ("" for none or an acknowledging endpoint)."""
        if not body or endpoint.acknowledge:
            return ""
        return request.crypto.encrypt(body, request.decrypted.receive_id)

    # -- steps ----------------------------------------------------------------------------

    def _query(self, environ: WSGIEnvironment) -> dict[str, str]:
        """Parse the query string once: percent-decoding only, '+' stays '+', no duplicates."""
        query: dict[str, str] = {}
        raw = environ.get("QUERY_STRING", "")
        decode = unquote if "%" in raw else str  # WeCom's own query strings have nothing to decode
        for pair in raw.split("&"):
            name, _, value = pair.partition("=")
            name = decode(name)
            if name in query:
                raise _Refusal(400, ParseError(f"duplicate query parameter {name!r}"))
            query[name] = decode(value)
        return query

    def _open(self, endpoint: Endpoint, query: dict[str, str], encrypted: str) -> _Request:
        """Check the timestamp and signature, then decrypt with the matching credentials."""
        msg_signature, timestamp, nonce = (
            query.get("msg_signature"),
            query.get("timestamp"),
            query.get("nonce"),
        )
        if not msg_signature or nonce is None:
            raise _Refusal(403, SignatureError("msg_signature or nonce is missing"))
        if (
            not timestamp
            or not timestamp.isascii()
            or not timestamp.isdigit()
            or len(timestamp) > 12
        ):
            raise _Refusal(403, TimestampError("timestamp is missing or not whole seconds"))
        if abs(self.clock() - int(timestamp)) > self.tolerance:
            raise _Refusal(
                403,
                TimestampError(
                    "timestamp outside the replay window", timestamp=timestamp, nonce=nonce
                ),
            )
        for index, crypto in enumerate(endpoint.credentials):
            try:
                decrypted = crypto.verify_and_decrypt(encrypted, msg_signature, timestamp, nonce)
            except SignatureError:
                continue
            except WeComError as exc:
                raise _Refusal(_status_for(exc), exc) from exc
            return _Request(endpoint, crypto, index, nonce, decrypted)
        raise _Refusal(
            403, SignatureError("msg_signature does not match", timestamp=timestamp, nonce=nonce)
        )

    def _read_body(self, environ: WSGIEnvironment) -> bytes:
        """Read the request body, refusing more than ``max_body`` bytes."""
        length_header = environ.get("CONTENT_LENGTH") or ""
        stream = environ["wsgi.input"]
        if length_header:
            if not (length_header.isascii() and length_header.isdigit()):
                raise _Refusal(400, ParseError("Content-Length is not a number"))
            # Compare digit counts first: int() of thousands of digits is itself an attack.
            length = int(length_header) if len(length_header) <= 18 else self.max_body + 1
            if length > self.max_body:
                raise _Refusal(413, PayloadTooLarge(f"body of {length} bytes over {self.max_body}"))
            return stream.read(length) if length else b""
        if not environ.get("wsgi.input_terminated"):
            return b""  # no length and no terminated stream: PEP 3333 says read nothing
        body = stream.read(self.max_body + 1)
        if len(body) > self.max_body:
            raise _Refusal(413, PayloadTooLarge(f"body over {self.max_body} bytes"))
        return bytes(body)

    def _run_app(
        self, environ: WSGIEnvironment, request: _Request, body: bytes, claim: Claim | None
    ) -> tuple[str, list[tuple[str, str]], bytes]:
        """Call the wrapped app on the plaintext; return its status, headers and whole body."""
        plaintext = request.decrypted.plaintext
        is_json = plaintext.lstrip()[:1] == b"{"
        environ["wecom.orig"] = {
            "body": body,
            "CONTENT_TYPE": environ.get("CONTENT_TYPE", ""),
            "CONTENT_LENGTH": environ.get("CONTENT_LENGTH", ""),
        }
        environ.update(
            {
                "wsgi.input": io.BytesIO(plaintext),
                "CONTENT_LENGTH": str(len(plaintext)),
                "CONTENT_TYPE": _CONTENT_TYPES["json" if is_json else "xml"],
                "wecom.plaintext": plaintext,
                "wecom.message": request.message,
                "wecom.endpoint": request.endpoint,
                "wecom.credential": request.credential,
                "wecom.receive_id": request.decrypted.receive_id,
                "wecom.dedup": claim.state if claim else None,
            }
        )
        response: dict[str, Any] = {}
        chunks: list[bytes] = []

        def capture(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Callable[[bytes], object]:
            # Nothing is sent before the app returns, so a later call (with exc_info)
            # simply replaces the status and headers, as PEP 3333 allows.
            response["status"], response["headers"] = status, headers
            return chunks.append

        result = self.app(environ, capture)
        try:
            chunks.extend(result)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        if "status" not in response:
            raise RuntimeError("the wrapped WSGI app returned without calling start_response")
        return response["status"], list(response["headers"]), b"".join(chunks)

    def _refuse(
        self,
        endpoint: Endpoint,
        environ: WSGIEnvironment,
        start_response: StartResponse,
        refusal: _Refusal,
    ) -> Iterable[bytes]:
        error = refusal.error
        logger.warning(
            "refused %s %s from %s: %s (%d)",
            environ.get("REQUEST_METHOD", "?"),
            endpoint.name,
            environ.get("REMOTE_ADDR", "?"),
            error.reason,
            error.code,
        )
        outcome = Outcome(endpoint.name, "refused", refusal.status, error.reason)
        return self._answer(
            endpoint,
            start_response,
            outcome,
            f"{error.reason} ({error.code})\n".encode(),
            [("Content-Type", "text/plain; charset=utf-8")],
        )

    def _answer(
        self,
        endpoint: Endpoint,
        start_response: StartResponse,
        outcome: Outcome,
        body: bytes,
        headers: list[tuple[str, str]],
        status: str | None = None,
    ) -> Iterable[bytes]:
        """Send a complete response with the right Content-Length, then run the hooks."""
        headers = [(k, v) for k, v in headers if k.lower() != "content-length"]
        headers.append(("Content-Length", str(len(body))))
        start_response(status or _STATUS_LINES[outcome.status], headers)
        for hook in self.hooks:
            try:
                hook(outcome)
            except Exception:
                logger.exception("outcome hook %r failed", hook)
        return [body]


_STATUS_LINES = {
    200: "200 OK",
    400: "400 Bad Request",
    403: "403 Forbidden",
    405: "405 Method Not Allowed",
    413: "413 Content Too Large",
}
