"""The callback pipeline: from a request to a callback URL to the answer, in any framework.

Every adapter (the WSGI middleware, the ASGI middleware, the Flask extension through the
WSGI middleware) translates its framework's request into the same few calls and sends
back the :class:`Answer` it gets. The path of one callback:

1. :meth:`Pipeline.check_query` (before the body is read): the method, ``msg_signature``
   present, ``timestamp`` whole seconds inside the replay window. Cheap refusals first.
2. :meth:`Pipeline.open`: the envelope (under its own size cap), the signature over the
   ciphertext, decryption, the receive id allowed for the method, parsing, and the
   direction check (a callback *to* us, not a reply of ours posted back, nor another
   agent's). Every failure after the signature check gets one and the same answer, so
   nothing about the plaintext leaks (no padding oracle); the log names the cause.
3. :meth:`Pipeline.claim`: retry dedup (:mod:`flask_wecom.dedup`): a retry of a callback
   already answered gets the stored reply again (:meth:`Pipeline.replay`).
4. :meth:`Pipeline.dispatch`: the endpoint's :class:`~flask_wecom.receivers.Receiver`
   routes the message and runs the handler under WeCom's 5-second deadline
   (:mod:`flask_wecom.runner`), or defers it; the result becomes a reply (text, a Reply,
   None, or an AI-bot stream).
5. :meth:`Pipeline.answer`: render, encrypt, seal, settle the dedup claim.

:meth:`Pipeline.handle` runs these in order for synchronous adapters; the ASGI adapter
runs the same steps with awaits. An endpoint without a receiver hands the verified
request to the wrapped application instead of step 4 (the middleware-only mode).

URL verification (GET) answers the decrypted ``echostr`` only when it looks like one: a
short printable token (WeCom sends a random number). Anything longer, or XML or JSON, is
refused, so a captured callback cannot be decrypted by sending it as an ``echostr``.

No web framework is imported here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Callable, Generator, Iterable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import unquote

from .crypto import WeComCrypto
from .dedup import Claim, Deduplicator, dedup_key
from .envelope import EnvelopeFormat, extract_encrypted
from .errors import (
    MethodNotAllowed,
    NotACallback,
    ParseError,
    PayloadTooLarge,
    ReceiveIdError,
    ReplyError,
    SignatureError,
    TimestampError,
    WeComError,
)
from .messages import Message, parse_message
from .receivers import Call, Deferrer, Receiver, Scope
from .replies import Reply
from .router import RuleMatch
from .runner import LATE, Runner
from .stores import MemoryStore, Store

if TYPE_CHECKING:
    from .client import WeComClient

__all__ = [
    "DEFAULT_MAX_BODY",
    "DEFAULT_MAX_ENVELOPE",
    "DEFAULT_TOLERANCE",
    "MAX_ECHO_BYTES",
    "AfterSignature",
    "Answer",
    "Endpoint",
    "Outcome",
    "OutcomeHook",
    "Pipeline",
    "Query",
    "Route",
    "Verified",
    "check_direction",
    "parse_query",
]

logger = logging.getLogger("flask_wecom")

#: Default request body cap. WeCom callbacks are a few KB; the spec has no larger payload.
DEFAULT_MAX_BODY = 256 * 1024
#: Default cap on the envelope that is parsed and signed: the largest documented callback
#: (an AI bot's mixed message) is well under it, and a refused request stays cheap.
DEFAULT_MAX_ENVELOPE = 32 * 1024
#: Default replay window, seconds either side of the clock.
DEFAULT_TOLERANCE = 300.0
#: The longest decrypted ``echostr`` answered: WeCom's is a random number of about 19 digits.
MAX_ECHO_BYTES = 64
_ECHO = re.compile(rb"[0-9A-Za-z._~+/=-]{1,%d}" % MAX_ECHO_BYTES)

CONTENT_TYPES = {
    "xml": "application/xml; charset=utf-8",
    "json": "application/json; charset=utf-8",
}
_TEXT = [("Content-Type", "text/plain; charset=utf-8")]

#: The one answer to every request refused after its signature checked out.
_UNREADABLE = ParseError(
    "the callback could not be decrypted or read; the server log names the cause"
)


class Query(NamedTuple):
    """The signed query parameters of a request to a callback URL."""

    msg_signature: str
    timestamp: str
    nonce: str
    #: URL verification's ``echostr`` ("" for callbacks).
    echostr: str


class Answer(NamedTuple):
    """What an adapter sends back: a status, headers and the whole body."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes


class Outcome(NamedTuple):
    """What happened to one request to an endpoint, handed to every outcome hook."""

    #: The endpoint's name.
    endpoint: str
    #: ``"verified"`` (URL check answered), ``"accepted"`` (handled), ``"replayed"`` (a
    #: retry got the stored reply), ``"waited"`` (a retry found the first still running and
    #: got an empty answer) or ``"refused"``.
    outcome: str
    #: The HTTP status sent.
    status: int
    #: For refusals, the error's ``reason`` (``"signature"``, ``"timestamp"``, ...).
    reason: str | None = None
    #: Index of the credential set that verified the request, if any.
    credential: int | None = None
    #: Seconds spent in the handler (or the wrapped app), for accepted callbacks.
    handler_seconds: float | None = None
    #: The retry dedup verdict: ``"first"``, ``"replay"``, ``"waited"``, ``"bypass"``
    #: (store down), or None (dedup off, or not a callback).
    dedup: str | None = None


#: An outcome hook: called once per request to an endpoint; its errors are logged and ignored.
OutcomeHook = Callable[[Outcome], None]


@dataclass(frozen=True)
class Endpoint:
    """One callback URL with its credentials and, usually, its receiver.

    :param path: the path it answers, e.g. ``"/wecom"``.
    :param credentials: one :class:`WeComCrypto`, or several during a key rotation
        (newest first): the first whose signature matches wins.
    :param receiver: the handlers and policy (:class:`~flask_wecom.receivers.Receiver`);
        None hands verified callbacks to the wrapped application instead.
    :param format: the reply envelope, ``"xml"`` or ``"json"``; defaults to the receiver's.
    :param name: a label for logs, metrics and store keys; defaults to the path.
    :param acknowledge: a literal, unencrypted answer to every accepted callback (suite
        command callbacks answer ``"success"``); defaults to the receiver's.
    :param url_receive_ids: the receive ids URL verification (GET) may carry; None: any the
        credentials accept. A suite's is the provider CorpID.
    :param callback_receive_ids: likewise for callbacks (POST). A suite's is the SuiteID.
    :param agent_id: refuse callbacks whose ``AgentID`` differs (None: any).
    :param deadline: seconds a handler may take before WeCom is answered empty and its
        reply goes through the API instead (WeCom waits 5); 0 runs handlers inline.
    :param client: the API client for late and deferred replies (message/send).
    :param deferrer: where ``deferred=True`` handlers run (default: the pipeline's runner).
    :param scope: the context handlers run in (the Flask adapter gives the app context).
    """

    path: str
    credentials: tuple[WeComCrypto, ...]
    receiver: Receiver | None = None
    format: EnvelopeFormat = "xml"
    name: str = ""
    acknowledge: str = ""
    url_receive_ids: frozenset[str] | None = None
    callback_receive_ids: frozenset[str] | None = None
    agent_id: str | None = None
    deadline: float = 4.0
    client: WeComClient | None = None
    deferrer: Deferrer | None = None
    scope: Scope = contextlib.nullcontext

    def __init__(
        self,
        path: str,
        credentials: WeComCrypto | Sequence[WeComCrypto],
        format: EnvelopeFormat | None = None,
        name: str = "",
        acknowledge: str | None = None,
        *,
        receiver: Receiver | None = None,
        url_receive_ids: Iterable[str] | None = None,
        callback_receive_ids: Iterable[str] | None = None,
        agent_id: int | str | None = None,
        deadline: float = 4.0,
        client: WeComClient | None = None,
        deferrer: Deferrer | None = None,
        scope: Scope = contextlib.nullcontext,
    ) -> None:
        creds = (credentials,) if isinstance(credentials, WeComCrypto) else tuple(credentials)
        if not path.startswith("/"):
            raise ValueError(f"endpoint path must start with '/', got {path!r}")
        if not creds or not all(isinstance(c, WeComCrypto) for c in creds):
            raise ValueError("an endpoint needs one WeComCrypto or a non-empty sequence of them")
        format = format or (receiver.format if receiver else "xml")
        if format not in CONTENT_TYPES:
            raise ValueError(f"format must be 'xml' or 'json', got {format!r}")
        set_ = object.__setattr__
        set_(self, "path", path)
        set_(self, "credentials", creds)
        set_(self, "receiver", receiver)
        set_(self, "format", format)
        set_(self, "name", name or path)
        set_(self, "acknowledge", receiver.acknowledge if acknowledge is None and receiver else "")
        if acknowledge is not None:
            set_(self, "acknowledge", acknowledge)
        for field, ids in (
            ("url_receive_ids", url_receive_ids),
            ("callback_receive_ids", callback_receive_ids),
        ):
            set_(self, field, None if ids is None else frozenset(ids))
        set_(self, "agent_id", None if agent_id in (None, "") else str(agent_id))
        if not 0 <= deadline < 5:
            raise ValueError("deadline must be 0 (inline) or under WeCom's 5 seconds")
        set_(self, "deadline", deadline)
        set_(self, "client", client)
        set_(self, "deferrer", deferrer)
        set_(self, "scope", scope)

    @property
    def receive_ids(self) -> frozenset[str]:
        """Every receive id the endpoint's credentials accept."""
        return frozenset(rid for crypto in self.credentials for rid in crypto.receive_ids)


@dataclass
class Verified:
    """A callback whose signature, decryption and direction checked out."""

    endpoint: Endpoint
    #: The credential set that verified it, and its index (0 = the newest).
    crypto: WeComCrypto
    credential: int
    nonce: str
    plaintext: bytes
    #: The receive id inside the ciphertext.
    receive_id: str
    message: Message
    #: The client's address, for logs.
    remote: str = "?"


class AfterSignature(WeComError):
    """A refusal after the signature checked out: every cause gets one answer (so nothing
    about the plaintext leaks: no padding or receive-id oracle); the log names the cause."""

    def __init__(self, error: WeComError) -> None:
        super().__init__(str(error))
        #: What actually failed (logged, counted; never shown to the client).
        self.error = error


def parse_query(raw: str) -> dict[str, str]:
    """Parse a query string: percent-decoding only ('+' stays '+'), no repeated names.

    :raises ParseError: a parameter is repeated.
    """
    query: dict[str, str] = {}
    decode = unquote if "%" in raw else str  # WeCom's own query strings have nothing to decode
    for pair in raw.split("&") if raw else ():
        name, _, value = pair.partition("=")
        name = decode(name)
        if name in query:
            raise ParseError(f"duplicate query parameter {name!r}")
        query[name] = decode(value)
    return query


def check_direction(endpoint: Endpoint, message: Message) -> None:
    """Refuse a document that is not a callback to ``endpoint``.

    XML: ``FromUserName`` must not be one of our receive ids (our replies come *from* us),
    and ``ToUserName``, when not empty, must be one; an ``AgentID`` must be the endpoint's
    when it has one. JSON (AI bots): a sender (``from.userid``) or a bot id (``aibotid``),
    which no reply has. Nothing else of the document is a gate.

    :raises NotACallback: it is not.
    """
    if message.is_aibot:
        if not message.from_user_name and not message.raw.get("aibotid"):
            raise NotACallback("an AI-bot document with neither sender nor aibotid: a reply")
        return
    ours = endpoint.receive_ids - {""}
    if message.from_user_name is not None and message.from_user_name in ours:
        raise NotACallback("FromUserName is our own receive id: a reply of ours posted back")
    if ours and message.to_user_name and message.to_user_name not in ours:
        raise NotACallback("ToUserName is not a receive id of this endpoint")
    if (
        endpoint.agent_id is not None
        and message.agent_id is not None
        and str(message.agent_id) not in ("", endpoint.agent_id)
    ):
        raise NotACallback(
            f"AgentID {message.agent_id} is not this endpoint's ({endpoint.agent_id})"
        )


class Route(NamedTuple):
    """Where a callback goes (:meth:`Pipeline.route`)."""

    receiver: Receiver
    call: Call
    #: The matching rule, or None: then ``early`` (or nothing) answers.
    found: RuleMatch | None
    #: An answer before any handler (an AI-bot stream refresh), or None.
    early: Reply | None


def _missed(call: Call, deadline: float) -> None:
    logger.warning(
        "handler for %s/%s missed the %.1f s deadline; its reply goes through the API",
        call.message.type,
        call.message.event or "-",
        deadline,
    )


class Pipeline:
    """Verifies, deduplicates, routes, runs and seals callbacks for a set of endpoints.

    :param endpoints: the callback URLs.
    :param dedup: retry deduplication: a :class:`~flask_wecom.dedup.Deduplicator` (over
        Redis, shared by every worker), True for one over the pipeline's store, or False.
    :param store: the store for dedup, streams, suite tickets (default: in memory).
    :param runner: runs handlers under the deadline (default: 8 threads).
    :param streams: runs AI-bot stream producers (default: 8 threads of their own).
    :param max_body: the largest request body read, in bytes (413 above).
    :param max_envelope: the largest envelope parsed and signed, in bytes (413 above).
    :param tolerance: seconds the ``timestamp`` may differ from the clock, either way.
    :param clock: the current time in seconds.
    :param hooks: called with an :class:`Outcome` after each request to an endpoint.
    :param url_check: answer URL verification (GET); turn it off once the URL is saved in
        the admin console, and nothing can use the endpoint to decrypt.
    """

    def __init__(
        self,
        endpoints: Iterable[Endpoint] = (),
        *,
        dedup: Deduplicator | bool = True,
        store: Store | None = None,
        runner: Runner | None = None,
        streams: Runner | None = None,
        max_body: int = DEFAULT_MAX_BODY,
        max_envelope: int = DEFAULT_MAX_ENVELOPE,
        tolerance: float = DEFAULT_TOLERANCE,
        clock: Callable[[], float] = time.time,
        hooks: Iterable[OutcomeHook] = (),
        url_check: bool = True,
    ) -> None:
        if max_body < 1 or max_envelope < 1:
            raise ValueError("max_body and max_envelope must be positive numbers of bytes")
        if tolerance <= 0:
            raise ValueError("tolerance must be a positive number of seconds")
        self.store: Store = (
            store
            if store is not None
            else (dedup.store if isinstance(dedup, Deduplicator) else MemoryStore())
        )
        #: Retry dedup (None when off).
        self.dedup: Deduplicator | None = (
            Deduplicator(self.store) if dedup is True else dedup or None
        )
        if self.dedup is not None and self.dedup.ttl < 2 * tolerance:
            raise ValueError(
                f"the dedup ttl ({self.dedup.ttl:g} s, WECOM_DEDUP_TTL) must be at least twice "
                f"the replay window ({tolerance:g} s, WECOM_TOLERANCE), or a replay inside the "
                "window would run its handler again"
            )
        self.runner = runner or Runner()
        self.streams = streams or Runner()
        self.max_body, self.max_envelope = max_body, max_envelope
        self.tolerance = tolerance
        self.clock = clock
        self.url_check = url_check
        #: Outcome hooks; append to add one.
        self.hooks: list[OutcomeHook] = list(hooks)
        self._endpoints: dict[str, Endpoint] = {}
        self._dedup_secrets: dict[str, bytes] = {}
        self._background: set[asyncio.Future[Any]] = set()
        for endpoint in endpoints:
            self.add_endpoint(endpoint)

    @property
    def endpoints(self) -> tuple[Endpoint, ...]:
        """The mounted endpoints."""
        return tuple(self._endpoints.values())

    def add_endpoint(self, endpoint: Endpoint) -> None:
        """Mount another endpoint; its path and name must be free.

        Two endpoints sharing a credential set accept each other's callbacks unless their
        agent ids differ: that is logged as a warning.
        """
        if endpoint.path in self._endpoints:
            raise ValueError(f"an endpoint is already mounted at {endpoint.path!r}")
        if any(e.name == endpoint.name for e in self._endpoints.values()):
            raise ValueError(f"an endpoint is already named {endpoint.name!r}")
        keys = {(c.token, c.receive_ids) for c in endpoint.credentials}
        for other in self._endpoints.values():
            shared = keys & {(c.token, c.receive_ids) for c in other.credentials}
            if shared and (endpoint.agent_id is None or endpoint.agent_id == other.agent_id):
                logger.warning(
                    "endpoints %s and %s share a credential set: each accepts the other's "
                    "callbacks; give each its agent id (WECOM_AGENT_ID) or its own Token",
                    other.name,
                    endpoint.name,
                )
        self._endpoints[endpoint.path] = endpoint
        self._dedup_secrets[endpoint.name] = endpoint.credentials[0].derive_key(b"dedup")

    def endpoint(self, path: str) -> Endpoint | None:
        """The endpoint mounted at ``path``, if any."""
        return self._endpoints.get(path)

    # -- 1. the query, before the body ------------------------------------------------------

    def check_query(self, method: str, query_string: str) -> Query:
        """Check the method and the signed query parameters.

        :raises WeComError: the request is refused (its ``status`` says how).
        """
        if method not in ("GET", "POST"):
            raise MethodNotAllowed(f"{method} is not answered; WeCom sends GET and POST")
        query = parse_query(query_string)
        msg_signature, timestamp, nonce = (
            query.get("msg_signature"),
            query.get("timestamp"),
            query.get("nonce"),
        )
        if not msg_signature or len(msg_signature) != 40 or nonce is None:
            raise SignatureError("msg_signature or nonce is missing or malformed")
        if (
            not timestamp
            or not timestamp.isascii()
            or not timestamp.isdigit()
            or len(timestamp) > 12
        ):
            raise TimestampError("timestamp is missing or not whole seconds")
        if abs(self.clock() - int(timestamp)) > self.tolerance:
            raise TimestampError(
                "timestamp outside the replay window", timestamp=timestamp, nonce=nonce
            )
        return Query(msg_signature, timestamp, nonce, query.get("echostr", ""))

    # -- URL verification -----------------------------------------------------------------

    def verify_url(self, endpoint: Endpoint, query: Query, remote: str = "?") -> Answer:
        """Answer URL verification (GET) with the decrypted echostr, if it looks like one."""
        try:
            if not self.url_check:
                raise MethodNotAllowed(
                    "URL verification is turned off (WECOM_URL_CHECK=false); turn it on while "
                    "saving the callback URL in the admin console"
                )
            if not query.echostr:
                raise ParseError("URL verification without echostr")
            if len(query.echostr) > self.max_envelope:
                raise PayloadTooLarge("echostr over the envelope cap")
            index, crypto = self._signer(endpoint, query, query.echostr)
            try:
                echo, receive_id = crypto.decrypt(query.echostr)
                self._check_receive_id(endpoint.url_receive_ids, receive_id)
                if not _ECHO.fullmatch(echo):
                    raise NotACallback(
                        f"the decrypted echostr is not a short token (at most {MAX_ECHO_BYTES} "
                        "letters and digits): a captured message sent as an echostr"
                    )
            except WeComError as exc:
                raise AfterSignature(exc) from exc
        except WeComError as exc:
            return self.refuse(endpoint, "GET", remote, exc)
        outcome = Outcome(endpoint.name, "verified", 200, credential=index)
        return self._done(outcome, Answer(200, list(_TEXT), echo))

    # -- 2. open a callback ---------------------------------------------------------------

    def open(self, endpoint: Endpoint, query: Query, body: bytes, remote: str = "?") -> Verified:
        """Verify and decrypt a callback body, parse it and check its direction.

        :raises WeComError: refused (:class:`AfterSignature` once the signature checked
            out); answer with :meth:`refuse`.
        """
        if len(body) > self.max_envelope:
            raise PayloadTooLarge(
                f"envelope of {len(body)} bytes over WECOM_MAX_ENVELOPE ({self.max_envelope})"
            )
        encrypted = extract_encrypted(body)
        index, crypto = self._signer(endpoint, query, encrypted)
        try:
            plaintext, receive_id = crypto.decrypt(encrypted)
            self._check_receive_id(endpoint.callback_receive_ids, receive_id)
            message = parse_message(plaintext)
            check_direction(endpoint, message)
        except WeComError as exc:
            raise AfterSignature(exc) from exc
        return Verified(
            endpoint, crypto, index, query.nonce, plaintext, receive_id, message, remote
        )

    def _signer(self, endpoint: Endpoint, query: Query, encrypted: str) -> tuple[int, WeComCrypto]:
        for index, crypto in enumerate(endpoint.credentials):
            try:
                crypto.check_signature(query.msg_signature, query.timestamp, query.nonce, encrypted)
            except SignatureError:
                continue
            return index, crypto
        raise SignatureError(
            "msg_signature does not match", timestamp=query.timestamp, nonce=query.nonce
        )

    @staticmethod
    def _check_receive_id(allowed: frozenset[str] | None, receive_id: str) -> None:
        if allowed is not None and receive_id not in allowed:
            raise ReceiveIdError(
                f"receive id {receive_id!r} is not accepted for this method here; accepted: "
                f"{', '.join(repr(r) for r in sorted(allowed))}"
            )

    # -- 3. retry dedup -------------------------------------------------------------------

    def claim(self, verified: Verified) -> Claim | None:
        """Claim the callback for a first arrival, or find its reply (None: no dedup)."""
        steps = self.claim_steps(verified)
        return None if steps is None or self.dedup is None else self.dedup.drive(steps)

    def claim_steps(self, verified: Verified) -> Generator[float, None, Claim] | None:
        """:meth:`claim` as steps that yield the seconds to wait before the next look, so an
        event loop can wait without blocking (None: no dedup for this callback)."""
        message = verified.message
        if self.dedup is None or (message.is_aibot and message.type == "stream"):
            return None  # a stream refresh reads the latest state; replaying an old one is wrong
        name = verified.endpoint.name
        key = dedup_key(name, message, verified.plaintext, self._dedup_secrets[name])
        return self.dedup.claim_steps(key)

    def replay(self, verified: Verified, claim: Claim) -> Answer:
        """Answer a retry with the stored reply (or empty, if the first is still running)."""
        endpoint = verified.endpoint
        crypto = (
            endpoint.credentials[claim.credential]
            if claim.credential < len(endpoint.credentials)
            else verified.crypto
        )
        outcome = Outcome(
            endpoint.name,
            "replayed" if claim.state == "replay" else "waited",
            200,
            credential=verified.credential,
            dedup=claim.state,
        )
        return self._done(outcome, self._sealed(endpoint, crypto, verified.nonce, claim.reply))

    # -- 4. route and run -----------------------------------------------------------------

    def call_for(self, endpoint: Endpoint, message: Message, plaintext: bytes) -> Call:
        """The receiver's view of a callback to ``endpoint``."""
        return Call(
            message,
            plaintext,
            endpoint.name,
            self.store,
            self.streams,
            endpoint.client,
            endpoint.scope,
        )

    def route(self, verified: Verified) -> Route:
        """Where the callback goes: an answer before any handler, or the matching rule."""
        endpoint = verified.endpoint
        receiver = endpoint.receiver
        if receiver is None:
            raise RuntimeError("this endpoint has no receiver; the wrapped app answers it")
        call = self.call_for(endpoint, verified.message, verified.plaintext)
        early = receiver.before_handler(call)
        found = None if early is not None else receiver.resolve(call.message)
        return Route(receiver, call, found, early)

    def dispatch(self, verified: Verified) -> Reply | None:
        """Route the callback to its handler and run it under the deadline, or defer it.

        :raises Busy: every handler thread is taken (answer 503, WeCom retries).
        """
        receiver, call, found, early = self.route(verified)
        endpoint = verified.endpoint
        if found is None:
            return early
        if found.rule.deferred:
            if endpoint.deferrer is not None:
                endpoint.deferrer.defer(receiver.name, call.plaintext)
            else:
                self.runner.defer(lambda: receiver.deliver_late(call, receiver.invoke(found, call)))
            return None
        if endpoint.deadline <= 0 or found.rule.returns_at_once:
            return receiver.invoke(found, call)  # no hand-off where none can be late
        result = self.runner.run(
            lambda: receiver.invoke(found, call),
            endpoint.deadline,
            on_late=lambda late: receiver.deliver_late(call, late),
        )
        if result is LATE:
            _missed(call, endpoint.deadline)
            return None
        return result  # type: ignore[return-value]

    async def dispatch_async(
        self, verified: Verified, executor: Executor | None = None
    ) -> Reply | None:
        """:meth:`dispatch` on an event loop: ``async def`` handlers run on the loop, others
        on ``executor``; the deadline is asyncio's, and a handler past it keeps running, its
        reply going through the API when it ends."""
        receiver, call, found, early = self.route(verified)
        endpoint = verified.endpoint
        if found is None:
            return early
        loop = asyncio.get_running_loop()
        if found.rule.deferred and endpoint.deferrer is not None:
            await loop.run_in_executor(
                executor, endpoint.deferrer.defer, receiver.name, call.plaintext
            )
            return None
        if endpoint.deadline <= 0 and not found.rule.deferred:
            return await receiver.ainvoke(found, call, executor)
        task = loop.create_task(receiver.ainvoke(found, call, executor))
        if not found.rule.deferred:
            try:
                return await asyncio.wait_for(asyncio.shield(task), endpoint.deadline)
            except TimeoutError:
                _missed(call, endpoint.deadline)

        def deliver(done: asyncio.Task[Reply | None]) -> None:
            if not done.cancelled() and done.exception() is None:
                self._later(
                    loop.run_in_executor(executor, receiver.deliver_late, call, done.result())
                )

        self._later(task)
        task.add_done_callback(deliver)
        return None

    def _later(self, work: asyncio.Future[Any]) -> None:
        """Keep background work of the event loop alive until it ends (and await it on close)."""
        self._background.add(work)
        work.add_done_callback(self._background.discard)

    async def drain(self) -> None:
        """Wait for the event loop's late and deferred handlers and their replies (shutdown)."""
        while self._background:
            await asyncio.gather(*self._background, return_exceptions=True)

    def render(self, verified: Verified, reply: Reply | None) -> bytes:
        """The plaintext of a reply (empty for none, or for one that may not answer this)."""
        if reply is None:
            return b""
        try:
            return reply.render(verified.message).encode("utf-8")
        except ReplyError:
            logger.exception(
                "reply refused for %s/%s; answering empty",
                verified.message.type,
                verified.message.event or "-",
            )
            return b""

    # -- 5. seal and settle ---------------------------------------------------------------

    def answer(
        self,
        verified: Verified,
        claim: Claim | None,
        plaintext: bytes,
        *,
        status: int = 200,
        headers: Sequence[tuple[str, str]] = (),
        handler_seconds: float | None = None,
    ) -> Answer:
        """Encrypt and seal the reply plaintext, record it for retries, and answer.

        A non-2xx status (from a wrapped app) passes through unencrypted and releases the
        claim, so a retry runs the callback again.
        """
        endpoint = verified.endpoint
        if not 200 <= status < 300:
            self.settle(claim, None)
            answer = Answer(status, list(headers), plaintext)
        else:
            encrypted = (
                verified.crypto.encrypt(plaintext, verified.receive_id)
                if plaintext and not endpoint.acknowledge
                else ""
            )
            self.settle(claim, encrypted, verified.credential)
            answer = self._sealed(endpoint, verified.crypto, verified.nonce, encrypted)
            if answer.body:  # the app's own headers stay; only the body's type changes
                answer = answer._replace(
                    status=status,
                    headers=[(k, v) for k, v in headers if k.lower() != "content-type"]
                    + answer.headers,
                )
            else:
                answer = answer._replace(status=status, headers=list(headers))
        outcome = Outcome(
            endpoint.name,
            "accepted",
            answer.status,
            credential=verified.credential,
            handler_seconds=handler_seconds,
            dedup=claim.state if claim else None,
        )
        return self._done(outcome, answer)

    def settle(self, claim: Claim | None, encrypted: str | None, credential: int = 0) -> None:
        """Record a first arrival's encrypted reply, or release its claim (``None``)."""
        if claim is None or self.dedup is None:
            return
        if encrypted is None:
            self.dedup.release(claim)
        else:
            self.dedup.complete(claim, encrypted, credential)

    def _sealed(
        self, endpoint: Endpoint, crypto: WeComCrypto, nonce: str, encrypted: str
    ) -> Answer:
        if endpoint.acknowledge:
            return Answer(200, list(_TEXT), endpoint.acknowledge.encode("utf-8"))
        if not encrypted:
            return Answer(200, [], b"")
        envelope = crypto.seal(encrypted, nonce, format=endpoint.format)
        return Answer(200, [("Content-Type", CONTENT_TYPES[endpoint.format])], envelope.encode())

    # -- refusals and outcomes ------------------------------------------------------------

    def refuse(self, endpoint: Endpoint, method: str, remote: str, error: WeComError) -> Answer:
        """Log a refusal once (reason, code, hint; never plaintext) and answer it."""
        after_signature = isinstance(error, AfterSignature)
        cause = error.error if isinstance(error, AfterSignature) else error
        hint = cause.hint
        logger.warning(
            "refused %s %s from %s: %s (%d): %s%s",
            method,
            endpoint.name,
            remote,
            cause.reason,
            cause.code,
            cause,
            f"; {hint}" if hint else "",
            extra={
                "wecom_endpoint": endpoint.name,
                "wecom_method": method,
                "wecom_remote": remote,
                "wecom_reason": cause.reason,
                "wecom_code": cause.code,
            },
        )
        shown = _UNREADABLE if after_signature else cause
        body = f"{shown.reason} ({shown.code}): {shown.hint or shown}\n".encode()
        headers = list(_TEXT)
        if isinstance(cause, MethodNotAllowed) and method not in ("GET", "POST"):
            headers.append(("Allow", "GET, POST"))
        status = shown.status
        outcome = Outcome(endpoint.name, "refused", status, cause.reason)
        return self._done(outcome, Answer(status, headers, body))

    def _done(self, outcome: Outcome, answer: Answer) -> Answer:
        for hook in self.hooks:
            try:
                hook(outcome)
            except Exception:
                logger.exception("outcome hook %r failed", hook)
        return answer

    # -- the whole path, for synchronous adapters ---------------------------------------------

    def handle(
        self,
        endpoint: Endpoint,
        method: str,
        query_string: str,
        read_body: Callable[[int], bytes],
        remote: str = "?",
        app: Callable[[Verified, Claim | None], tuple[int, list[tuple[str, str]], bytes]]
        | None = None,
    ) -> Answer:
        """Answer one request to ``endpoint``.

        :param read_body: reads the body, at most the given number of bytes, raising
            :class:`~flask_wecom.errors.PayloadTooLarge` beyond.
        :param app: for an endpoint without a receiver: the wrapped application, called with
            the verified callback; it returns a status, headers and the plaintext reply.
        """
        try:
            query = self.check_query(method, query_string)
            if method == "GET":
                return self.verify_url(endpoint, query, remote)
            verified = self.open(endpoint, query, read_body(self.max_body), remote)
        except WeComError as exc:
            return self.refuse(endpoint, method, remote, exc)
        claim = self.claim(verified)
        if claim is not None and claim.state in ("replay", "waited"):
            return self.replay(verified, claim)
        started = time.perf_counter()
        try:
            if app is not None and endpoint.receiver is None:
                status, headers, plaintext = app(verified, claim)
            else:
                status, headers = 200, []
                plaintext = self.render(verified, self.dispatch(verified))
        except WeComError as exc:  # Busy: every handler thread is taken
            self.settle(claim, None)
            return self.refuse(endpoint, method, remote, exc)
        except BaseException:
            self.settle(claim, None)
            raise
        return self.answer(
            verified,
            claim,
            plaintext,
            status=status,
            headers=headers,
            handler_seconds=time.perf_counter() - started,
        )
