"""An AI bot (智能机器人) over WeCom's long connection (长连接): the same handlers, no public URL.

:class:`LongConnection` dials ``wss://openws.work.weixin.qq.com``, subscribes with the bot id
and the long-connection secret, and runs the callbacks it receives through the same
:class:`~flask_wecom.router.Router` (and :class:`~flask_wecom.aibot.BotReceiver` result
conversion) as the webhook AI bot: a handler written for one runs unchanged on the other,
sync (on a thread pool) or ``async def`` (on the loop), returning text, a reply object, or a
sync or async iterator of text chunks to stream::

    bot = BotReceiver()                       # or the Flask extension's AIBot

    @bot.message("text")
    async def answer(message):
        async for token in llm(message.content):
            yield token

    LongConnection(bot, bot_id, secret, store=RedisStore(url)).run_forever()

The protocol's rules, as the notes in ``spec/aibot-long-connection.md`` give them:

* ready only after the subscribe ack; a ``ping`` every 30 s, the connection declared dead
  after two unanswered; reconnects with capped exponential backoff and jitter, with separate
  budgets for dropped connections and refused credentials; refused credentials (853000)
  raise :class:`AuthFailed` after a few tries, never a retry storm;
* one reply frame in flight per ``req_id`` (the next after its ack or a 5 s timeout); welcome
  and card-update replies only within their 5 s; streams sent as cumulative content of at
  most 20480 bytes, refreshed every ``stream_refresh`` seconds, finished before the 6-minute
  limit, the rest sent with ``aibot_send_msg`` (also on 846608); a quota refusal is
  :class:`QuotaExceeded`, logged for replies and raised for API calls;
* with a ``store`` shared by several processes or hosts, an :class:`OwnerLease` lets exactly
  one of them hold the connection; the others stand by and take over within ``lease_ttl``
  seconds when it dies, at once when it stops. A ``disconnected_event`` while holding the
  lease (someone outside the group took the bot) stops the holder without reconnecting,
  logs one error, and keeps the group from taking the bot back for ``tombstone_ttl``;
* messages are deduplicated by ``msgid`` (:class:`~flask_wecom.dedup.Deduplicator`); each
  message being handled is written to the holder's journal in the store, and a new holder
  re-runs what a dead holder left unfinished (replying on the old ``req_id``, or with
  ``aibot_send_msg`` if WeCom refuses it). A graceful stop finishes running handlers for up
  to ``drain_timeout`` seconds, then hands the rest over the same way.

Needs the ``longconn`` extra (``websockets``); nothing else in flask_wecom imports this module.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import hashlib
import hmac
import json
import logging
import os
import random
import re
import secrets
import signal
import socket
import ssl
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, NamedTuple, TypeVar

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake
from websockets.frames import Frame, Opcode
from websockets.protocol import Event

from . import aio
from .aibot import BotReceiver
from .crypto import decrypt_media
from .dedup import Claim, Deduplicator, dedup_key
from .errors import ReplyError, StoreError, WeComError
from .ids import unique_id
from .messages import Message
from .model import message_from_json
from .receivers import Call, Receiver, Scope, handling
from .replies import (
    MAX_STREAM_BYTES,
    BotUpdateTemplateCardReply,
    Reply,
    StreamReply,
    TemplateCardReply,
)
from .router import Router
from .runner import Runner
from .stores import MemoryStore, Store
from .wsframes import FrameWriter

__all__ = [
    "DEFAULT_URL",
    "AckError",
    "AckTimeout",
    "AuthFailed",
    "Backoff",
    "Displaced",
    "LongConnError",
    "LongConnection",
    "Media",
    "NotConnected",
    "OwnerLease",
    "QuotaExceeded",
    "ReconnectExhausted",
    "StreamExpired",
]

logger = logging.getLogger("flask_wecom")

#: WeCom's long-connection endpoint (a private deployment has its own).
DEFAULT_URL = "wss://openws.work.weixin.qq.com"
#: Largest chunk of an upload, before base64.
UPLOAD_CHUNK_BYTES = 512 * 1024
_CALLBACKS = ("aibot_msg_callback", "aibot_event_callback")
#: The name of the tasks that run handlers (a graceful stop waits for them).
_HANDLING = "flask-wecom-handling"
T = TypeVar("T")


# --------------------------------------------------------------------------- errors


class LongConnError(WeComError):
    """Root of the long connection's errors."""

    reason = "longconn"


class AuthFailed(LongConnError):
    """WeCom refused the bot id or long-connection secret (853000), several times in a row."""

    reason = "longconn_auth"
    hint = "check the BotID and the long-connection secret (长连接专用密钥) in the admin console"


class Displaced(LongConnError):
    """Another client subscribed with this bot id (``disconnected_event``); not reconnecting."""

    reason = "longconn_displaced"
    hint = "another process or host runs this bot without sharing the lease store; stop it"


class ReconnectExhausted(LongConnError):
    """The connection dropped more times in a row than the reconnect budget allows."""

    reason = "longconn_reconnect"


class NotConnected(LongConnError):
    """No subscribed connection to send on (it closed, or did not come back in time)."""

    reason = "longconn_closed"


class AckTimeout(LongConnError):
    """WeCom did not answer a frame in time."""

    reason = "longconn_ack_timeout"


class AckError(LongConnError):
    """WeCom answered a frame with a non-zero errcode."""

    reason = "longconn_refused"

    def __init__(self, cmd: str, errcode: int, errmsg: str) -> None:
        super().__init__(f"{cmd} refused: {errcode} {errmsg}")
        #: The command refused, and WeCom's errcode and errmsg.
        self.cmd, self.errcode, self.errmsg = cmd, errcode, errmsg


class QuotaExceeded(AckError):
    """The conversation's quota (30 a minute, 1000 an hour) is used up."""

    reason = "longconn_quota"


class StreamExpired(AckError):
    """The stream is past its 6-minute window (846608)."""

    reason = "longconn_stream_expired"


_ERR_AUTH = 853000
_ERR_REQ_ID = 846605
_ERR_EXPIRED = 846608
_ERR_NOT_SUBSCRIBED = 846609
#: Quota codes: WeCom's documented API frequency errors (the long connection's is undocumented).
_QUOTA_CODES = frozenset({45009, 45033, 45047})


def _ack_error(cmd: str, errcode: int, errmsg: str) -> AckError:
    if errcode in _QUOTA_CODES:
        return QuotaExceeded(cmd, errcode, errmsg)
    if errcode == _ERR_EXPIRED:
        return StreamExpired(cmd, errcode, errmsg)
    return AckError(cmd, errcode, errmsg)


# --------------------------------------------------------------------------- backoff and lease


@dataclass(frozen=True)
class Backoff:
    """Capped exponential backoff with jitter: attempt n waits ``min(cap, base·2^(n-1))``
    times a random factor in ``[1 - jitter, 1]``, so contenders do not retry in step."""

    base: float = 1.0
    cap: float = 30.0
    jitter: float = 0.5

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before attempt ``attempt`` (1 for the first retry)."""
        full = min(self.cap, self.base * 2.0 ** max(attempt - 1, 0))
        draw: float = (rng or random).random()
        return full * (1 - self.jitter * draw)


class OwnerLease:
    """Which process holds a bot's connection, in a shared store (one owner per bot).

    The holder renews the lease every ``ttl / 3`` seconds; it lapses ``ttl`` seconds after
    the holder dies. A holder displaced by a client outside the group leaves a tombstone that
    keeps the group off the bot for ``tombstone_ttl`` seconds (no kick loop).

    :param store: shared by every contender (Redis across hosts).
    :param bot_id: the bot.
    :param ttl: seconds the lease survives without renewal.
    """

    def __init__(
        self, store: Store, bot_id: str, *, ttl: float = 5.0, tombstone_ttl: float = 600.0
    ) -> None:
        self.store, self.ttl, self.tombstone_ttl = store, ttl, tombstone_ttl
        self.key = f"longconn:{bot_id}:lease"
        self._last_key = f"longconn:{bot_id}:last"
        #: This contender's identity: host, pid and a random part.
        self.token = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}".encode()

    def try_acquire(self) -> bool:
        """Take the lease if nobody holds it (False: held, or tombstoned)."""
        return self.store.add(self.key, self.token, self.ttl)

    def holder(self) -> bytes | None:
        """The current holder's token (a tombstone starts with ``!``), or None."""
        return self.store.get(self.key)

    def renew(self) -> bool:
        """Extend our lease; False if it is no longer ours."""
        return self.store.compare_and_set(self.key, self.token, self.token, self.ttl)

    def release(self) -> None:
        """Give the lease up at once, so a standby takes over."""
        self.store.compare_and_set(self.key, self.token, None, self.ttl)

    def tombstone(self, reason: str) -> None:
        """Replace our lease with a tombstone: nobody in the group takes the bot for a while."""
        value = b"!" + reason.encode()
        self.store.compare_and_set(self.key, self.token, value, self.tombstone_ttl)

    def take_over(self) -> bytes | None:
        """Record us as the latest holder; return the previous holder's token, if another."""
        previous = self.store.get(self._last_key)
        self.store.set(self._last_key, self.token, 7 * 24 * 3600.0)
        return previous if previous != self.token else None

    def journal_key(self, token: bytes) -> str:
        """Where the holder ``token`` keeps the messages it is handling."""
        return f"{self.key}:journal:{token.decode(errors='replace')}"


class _Journal:
    """The messages this holder is handling, in the store, for a successor to finish."""

    def __init__(self, store: Store, key: str) -> None:
        self.store, self.key = store, key
        self._entries: dict[str, Any] = {}
        self._lock = threading.Lock()

    def add(self, req_id: str, body: Mapping[str, Any]) -> None:
        with self._lock:
            self._entries[req_id] = body
            self._write()

    def remove(self, req_id: str) -> None:
        with self._lock:
            if self._entries.pop(req_id, None) is not None:
                self._write()

    def _write(self) -> None:
        if self._entries:
            self.store.set(self.key, json.dumps(self._entries).encode(), 7 * 24 * 3600.0)
        else:
            self.store.delete(self.key)


# --------------------------------------------------------------------------- one websocket


def _req_id(cmd: str) -> str:
    return f"{cmd}_{int(time.time() * 1000)}_{unique_id()}"


class _Connection(ClientConnection):
    """A client connection that hands each whole text frame to ``on_text`` as it arrives,
    from the transport's callback: no queue, future or reader wake-up per frame. Other
    messages (fragmented or binary) still go to ``recv()``. Made by ``connect`` through its
    ``create_connection`` option."""

    #: Gets the text of each whole text frame; None until the reader sets it.
    on_text: Callable[[str], None] | None = None

    def process_event(self, event: Event) -> None:
        """A whole text frame goes to :attr:`on_text`; anything else as websockets does."""
        on_text = self.on_text
        if on_text is None or not (
            isinstance(event, Frame) and event.opcode is Opcode.TEXT and event.fin
        ):  # fragments, binary and control frames
            super().process_event(event)
            return
        try:
            text = bytes(event.data).decode()
        except UnicodeDecodeError:
            logger.warning("a text frame that is not UTF-8 was ignored")
            return
        try:
            on_text(text)
        except Exception:  # never into websockets' data_received
            logger.exception("a frame could not be handled")


class _Session:
    """One subscribed WebSocket: frames out (those sent close together in one write, see
    :mod:`flask_wecom.wsframes`), acks matched by ``req_id``."""

    def __init__(self, ws: _Connection, ack_timeout: float) -> None:
        self.ws, self.ack_timeout = ws, ack_timeout
        #: Frames awaiting their ack, oldest first: the future and when it times out.
        self.pending: dict[str, tuple[asyncio.Future[dict[str, Any]], float]] = {}
        self.unanswered_pings = 0
        self.displaced = False
        self.frames = FrameWriter(ws, lambda: NotConnected("the connection closed"))
        self._sweep_timer: asyncio.TimerHandle | None = None

    async def request(self, cmd: str, req_id: str, body: Any = None) -> dict[str, Any]:
        """Send a frame and wait for its ack; ``body`` may be JSON text already."""
        head = f'{{"cmd": "{cmd}", "headers": {{"req_id": {json.dumps(req_id)}}}'
        if body is not None:
            text = body if isinstance(body, str) else json.dumps(body, ensure_ascii=False)
            head = f'{head}, "body": {text}'
        head += "}"
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self.pending[req_id] = (future, loop.time() + self.ack_timeout)
        if self._sweep_timer is None:
            self._sweep_timer = loop.call_later(self.ack_timeout, self._sweep)
        try:
            self.frames.send(head, future)
            ack = await future
        except TimeoutError:
            raise AckTimeout(f"no answer to {cmd} within {self.ack_timeout:g} s") from None
        finally:
            self.pending.pop(req_id, None)
        errcode = ack.get("errcode", 0)
        if errcode:
            code = errcode if isinstance(errcode, int) else -1
            raise _ack_error(cmd, code, str(ack.get("errmsg", "")))
        answer: dict[str, Any] = ack
        return answer

    def ping(self) -> None:
        self.unanswered_pings += 1
        self.frames.send(json.dumps({"cmd": "ping", "headers": {"req_id": _req_id("ping")}}))

    def resolve(self, frame: dict[str, Any]) -> None:
        req_id = _req_id_of(frame)
        if req_id.startswith("ping_"):
            self.unanswered_pings = 0
            return
        waiting = self.pending.get(req_id)
        if waiting is not None and not waiting[0].done():
            waiting[0].set_result(frame)

    def fail_all(self) -> None:
        for future, _ in self.pending.values():
            if not future.done():
                future.set_exception(NotConnected("the connection closed"))

    def _sweep(self) -> None:
        """Time out the frames whose ack is overdue; one timer for all (not one per frame)."""
        now = asyncio.get_running_loop().time()
        next_due = None
        for future, due in list(self.pending.values()):  # oldest first
            if due > now:
                next_due = due
                break
            if not future.done():
                future.set_exception(TimeoutError())
        self._sweep_timer = None
        if next_due is not None:
            self._sweep_timer = asyncio.get_running_loop().call_at(next_due, self._sweep)


def _req_id_of(frame: Mapping[str, Any]) -> str:
    """A frame's ``headers.req_id`` ("" if it has none)."""
    headers = frame.get("headers")
    req_id = headers.get("req_id") if isinstance(headers, dict) else None
    return req_id if isinstance(req_id, str) else ""


class Media(NamedTuple):
    """A downloaded, decrypted file of a message."""

    data: bytes
    filename: str


# --------------------------------------------------------------------------- the transport


class LongConnection:
    """An AI bot's handlers served over the long connection; see the module docstring.

    :param receiver: the handlers: a :class:`~flask_wecom.aibot.BotReceiver` (the Flask
        extension's ``AIBot`` is one) or any :class:`~flask_wecom.router.Router`.
    :param bot_id: the BotID.
    :param secret: the long-connection secret (长连接专用密钥), not the webhook Token.
    :param url: the endpoint (a private deployment's, or a fake server's).
    :param store: dedup, lease and journal store; a :class:`~flask_wecom.stores.RedisStore`
        shared by every process and host that runs this bot. Default: in memory, no lease.
    :param lease: hold a lease in ``store`` (default: when the store is not in memory).
    :param dedup: deduplicate by ``msgid`` (a :class:`~flask_wecom.dedup.Deduplicator` of
        one's own, or True for one over ``store``).
    :param threads: threads for sync handlers and store calls.
    :param scope: the context every handler runs in (Flask: ``app.app_context``).
    :param ssl_context: TLS settings for ``wss://`` (default: the system's).
    :param ping_interval: seconds between pings; two unanswered and the connection is dead.
    :param ack_timeout: seconds to wait for the ack of a frame.
    :param reply_wait: seconds a reply waits for a connection to come back.
    :param reconnect: the backoff between attempts.
    :param max_drops: dropped connections in a row before :class:`ReconnectExhausted`
        (None: retry forever).
    :param max_auth_failures: refused subscribes in a row before :class:`AuthFailed`.
    :param stream_refresh: seconds after which a stream without new text is sent again.
    :param stream_limit: seconds after its first frame a stream is finished (WeCom's: 360).
    :param lease_ttl: seconds the lease outlives its holder.
    :param standby_poll: seconds between a standby's looks at the lease.
    :param tombstone_ttl: seconds the group stays off a bot taken by an outside client.
    :param drain_timeout: seconds a graceful stop waits for running handlers.
    :param event_deadline: seconds a welcome or card-update handler may take.
    """

    def __init__(
        self,
        receiver: Router,
        bot_id: str,
        secret: str,
        *,
        url: str = DEFAULT_URL,
        store: Store | None = None,
        lease: bool | None = None,
        dedup: Deduplicator | bool = True,
        threads: int = 16,
        scope: Scope = contextlib.nullcontext,
        ssl_context: ssl.SSLContext | None = None,
        ping_interval: float = 30.0,
        ack_timeout: float = 5.0,
        reply_wait: float = 30.0,
        reconnect: Backoff = Backoff(),
        max_drops: int | None = None,
        max_auth_failures: int = 5,
        stream_refresh: float = 180.0,
        stream_limit: float = 330.0,
        lease_ttl: float = 5.0,
        standby_poll: float = 0.5,
        tombstone_ttl: float = 600.0,
        drain_timeout: float = 10.0,
        event_deadline: float = 4.5,
    ) -> None:
        if not bot_id or not secret:
            raise ValueError("the long connection needs the bot id and its long-connection secret")
        self.receiver = receiver
        self.policy = receiver if isinstance(receiver, BotReceiver) else BotReceiver()
        #: Runs handlers: the receiver (its error handler), or the policy for a bare Router.
        self._runner: Receiver = receiver if isinstance(receiver, Receiver) else self.policy
        self.bot_id, self._secret, self.url = bot_id, secret, url
        self.store: Store = store if store is not None else MemoryStore()
        self._store_in_memory = isinstance(self.store, MemoryStore)
        use_lease = not self._store_in_memory if lease is None else lease
        self.lease = (
            OwnerLease(self.store, bot_id, ttl=lease_ttl, tombstone_ttl=tombstone_ttl)
            if use_lease
            else None
        )
        self.dedup = (
            dedup
            if isinstance(dedup, Deduplicator)
            else (Deduplicator(self.store, wait=0.0, write_behind=0.0) if dedup else None)
        )
        self._dedup_secret = hmac.new(secret.encode(), b"flask_wecom:dedup", "sha256").digest()
        self.name = f"longconn:{bot_id}"
        self.scope = scope
        self.ssl_context = ssl_context
        self.ping_interval, self.ack_timeout, self.reply_wait = (
            ping_interval,
            ack_timeout,
            reply_wait,
        )
        self.reconnect, self.max_drops, self.max_auth_failures = (
            reconnect,
            max_drops,
            max_auth_failures,
        )
        self.stream_refresh, self.stream_limit = stream_refresh, stream_limit
        self.standby_poll, self.drain_timeout = standby_poll, drain_timeout
        self.event_deadline = event_deadline
        self.threads = threads
        #: Counters: ``handled``, ``duplicates``, ``replies``, ``reply_errors``, ``quota``,
        #: ``subscribed``, ``drops``, ``auth_failures``, ``recovered``.
        self.stats: Counter[str] = Counter()
        self._executor: aio.HandlerPool | None = None
        #: Store and download work, apart from handlers: busy handlers never delay the lease.
        self._io: ThreadPoolExecutor | None = None
        self._stop_requested = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = asyncio.Event()
        self._session: _Session | None = None
        self._ready = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._journal: _Journal | None = None
        self._streams = Runner(1)
        self._thread: threading.Thread | None = None
        self._thread_error: BaseException | None = None
        self._started = threading.Event()

    # -- running ------------------------------------------------------------------------------

    async def run(self) -> None:
        """Hold the bot's connection (or stand by for it) until :meth:`stop`.

        :raises AuthFailed: the credentials were refused ``max_auth_failures`` times in a row.
        :raises Displaced: another client outside the lease group took the bot.
        :raises ReconnectExhausted: the connection dropped ``max_drops`` times in a row.
        """
        self._loop = asyncio.get_running_loop()
        self._stopping, self._ready = asyncio.Event(), asyncio.Event()
        if self._stop_requested.is_set():
            self._stopping.set()
        self._executor = aio.HandlerPool(self.threads, thread_name_prefix="flask-wecom-bot")
        self._io = ThreadPoolExecutor(4, thread_name_prefix="flask-wecom-bot-io")
        self._started.set()
        try:
            while not self._stopping.is_set():
                if self.lease is not None and not await self._acquire(self.lease):
                    break
                if await self._hold():
                    break
        finally:
            await self._shutdown()
            self._stop_requested.clear()

    def run_forever(self) -> None:
        """Run until SIGTERM or SIGINT (then stop gracefully and hand over)."""

        async def main() -> None:
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(signum, self.stop)
            await self.run()

        asyncio.run(main())

    def start(self) -> LongConnection:
        """Run on a thread of its own (tests, or beside a WSGI server); see :meth:`stop`."""

        def target() -> None:
            try:
                asyncio.run(self.run())
            except BaseException as exc:  # kept for stop() / wait_ready() to raise
                self._thread_error = exc
                self._started.set()

        self._thread = threading.Thread(target=target, name="flask-wecom-longconn", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float | None = None) -> None:
        """Stop gracefully: finish or hand over running handlers, release the lease.

        From another thread (after :meth:`start`) it waits up to ``timeout`` seconds and
        raises what ended the connection, if anything did.
        """
        self._stop_requested.set()  # seen by a run() that has not started yet
        if self._loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop is closed already
                self._loop.call_soon_threadsafe(self._stopping.set)
        if self._thread is not None and self._thread is not threading.current_thread():
            self.wait(timeout)

    def wait(self, timeout: float | None = None) -> None:
        """Wait for :meth:`start`'s thread to end; raise what ended it, if anything."""
        if self._thread is not None:
            self._thread.join(timeout)
        if self._thread_error is not None:
            raise self._thread_error

    @property
    def running(self) -> bool:
        """True while :meth:`start`'s thread runs."""
        return self._thread is not None and self._thread.is_alive()

    @property
    def connected(self) -> bool:
        """True while a subscribed connection is up."""
        return self._ready is not None and self._ready.is_set()

    def wait_ready(self, timeout: float = 10.0) -> bool:
        """Wait until subscribed (from another thread); False on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._thread_error is not None:
                raise self._thread_error
            if self.connected:
                return True
            time.sleep(0.01)
        return False

    async def _acquire(self, lease: OwnerLease) -> bool:
        """Stand by until the lease is ours; False if stopped first."""
        told = False
        while not self._stopping.is_set():
            try:
                if await self._in_thread(lease.try_acquire):
                    previous = await self._in_thread(lease.take_over)
                    self._journal = _Journal(self.store, lease.journal_key(lease.token))
                    if previous is not None:
                        self._spawn(self._recover(lease, previous))
                    logger.info("bot %s: this process holds the long connection", self.bot_id)
                    return True
                holder = await self._in_thread(lease.holder)
            except StoreError as exc:
                logger.warning("bot %s: lease store unavailable (%s); retrying", self.bot_id, exc)
                holder = None
            if not told and holder is not None:
                told = True
                if holder.startswith(b"!"):
                    logger.error(
                        "bot %s: standing by: the group was displaced by another client "
                        "(disconnected_event) and stays off the bot until the tombstone "
                        "in %s expires",
                        self.bot_id,
                        lease.key,
                    )
                else:
                    logger.info("bot %s: standing by; another process holds it", self.bot_id)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.standby_poll)
        return False

    async def _hold(self) -> bool:
        """Connect and serve while we hold the lease; True when the run is over (stopped)."""
        drops = failures = 0
        lease_lost = asyncio.Event()
        keeper = self._spawn(self._keep_lease(self.lease, lease_lost)) if self.lease else None
        try:
            while not self._stopping.is_set() and not lease_lost.is_set():
                try:
                    ws: _Connection = await connect(  # type: ignore[assignment]  # its factory
                        self.url,
                        create_connection=_Connection,
                        ssl=self.ssl_context if self.url.startswith("wss:") else None,
                        ping_interval=None,
                        compression=None,
                        open_timeout=10,
                        close_timeout=2,
                        max_size=2**23,
                    )
                except (OSError, InvalidHandshake, TimeoutError) as exc:
                    drops += 1
                    await self._retry_pause("connect failed", exc, drops, self.max_drops)
                    continue
                session = _Session(ws, self.ack_timeout)
                reader = self._spawn(self._read(session))
                try:
                    await session.request(
                        "aibot_subscribe",
                        _req_id("aibot_subscribe"),
                        {"bot_id": self.bot_id, "secret": self._secret},
                    )
                except AckError as exc:
                    await ws.close()
                    if exc.errcode != _ERR_AUTH:
                        drops += 1
                        await self._retry_pause("subscribe refused", exc, drops, self.max_drops)
                        continue
                    failures += 1
                    self.stats["auth_failures"] += 1
                    if failures >= self.max_auth_failures:
                        raise AuthFailed(
                            f"bot {self.bot_id}: WeCom refused the bot id or secret "
                            f"{failures} times (853000); not retrying"
                        ) from exc
                    await self._retry_pause("credentials refused", exc, failures, None)
                    continue
                except (AckTimeout, NotConnected) as exc:
                    ws.transport.abort()
                    drops += 1
                    await self._retry_pause("subscribe unanswered", exc, drops, self.max_drops)
                    continue
                drops = failures = 0
                self.stats["subscribed"] += 1
                self._session = session
                self._ready.set()
                logger.info("bot %s: subscribed to the long connection", self.bot_id)
                beat = self._spawn(self._heartbeat(session))
                stop = self._spawn(self._stopping.wait())
                lost = self._spawn(lease_lost.wait())
                await asyncio.wait({reader, stop, lost}, return_when=asyncio.FIRST_COMPLETED)
                for task in (beat, stop, lost):
                    task.cancel()
                if self._stopping.is_set():
                    return True  # _shutdown drains on this still-open session
                self._ready.clear()
                self._session = None
                session.fail_all()
                if session.displaced:
                    await self._displaced(ws)
                    return False
                ws.transport.abort()
                if lease_lost.is_set():
                    logger.warning("bot %s: lost the lease; standing by", self.bot_id)
                    return False
                drops += 1
                self.stats["drops"] += 1
                await self._retry_pause("connection dropped", None, drops, self.max_drops)
            return self._stopping.is_set()
        finally:
            if keeper is not None and not self._stopping.is_set():
                keeper.cancel()  # on stop it renews the lease until _shutdown releases it

    async def _retry_pause(
        self, what: str, exc: BaseException | None, attempt: int, budget: int | None
    ) -> None:
        if budget is not None and attempt > budget:
            raise ReconnectExhausted(f"bot {self.bot_id}: {what} {attempt} times in a row")
        delay = self.reconnect.delay(attempt)
        logger.warning(
            "bot %s: %s (%s); retry %d in %.1f s",
            self.bot_id,
            what,
            exc or "no error",
            attempt,
            delay,
        )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), delay)

    async def _displaced(self, ws: ClientConnection) -> None:
        """Another client took the bot: stop for good if it is outside our lease group."""
        ws.transport.abort()
        if self.lease is not None:
            holder = await self._in_thread(self.lease.holder)
            if holder != self.lease.token:
                logger.info("bot %s: a standby of this group took over", self.bot_id)
                return
            await self._in_thread(self.lease.tombstone, "displaced")
        message = (
            f"bot {self.bot_id}: WeCom gave the long connection to another client "
            "(disconnected_event): something outside this group subscribed with the same bot "
            "id (another deployment, an SDK, a probe). Stopping without reconnecting, to avoid "
            "a kick loop; stop the other client, then restart this one"
        )
        logger.error(message)
        raise Displaced(message)

    async def _keep_lease(self, lease: OwnerLease, lost: asyncio.Event) -> None:
        last_ok = time.monotonic()
        while True:
            await asyncio.sleep(lease.ttl / 3)
            try:
                if not await self._in_thread(lease.renew):
                    lost.set()
                    return
                last_ok = time.monotonic()
            except StoreError as exc:
                if time.monotonic() - last_ok > lease.ttl * 2 / 3:
                    logger.error("bot %s: cannot renew the lease (%s)", self.bot_id, exc)
                    lost.set()
                    return

    async def _heartbeat(self, session: _Session) -> None:
        while True:
            await asyncio.sleep(self.ping_interval)
            if session.unanswered_pings >= 2:
                logger.warning("bot %s: two pings unanswered; the connection is dead", self.bot_id)
                session.ws.transport.abort()
                return
            session.ping()

    async def _read(self, session: _Session) -> None:
        """Serve the session's frames until it closes: whole text frames straight from the
        connection as they arrive (see :class:`_Connection`), any other message from here."""
        session.ws.on_text = functools.partial(self._on_frame, session)
        with contextlib.suppress(ConnectionClosed):
            async for raw in session.ws:
                self._on_frame(session, raw)
                if session.displaced:
                    return

    def _on_frame(self, session: _Session, raw: str | bytes) -> None:
        """Dispatch one frame: an ack to its request, a callback to a new handling task."""
        if session.displaced:
            return  # what followed the disconnected_event is no longer ours
        try:
            frame = json.loads(raw)
        except (ValueError, RecursionError):
            frame = None
        if not isinstance(frame, dict):
            logger.warning("bot %s: an unreadable frame was ignored", self.bot_id)
            return
        cmd = frame.get("cmd")
        if cmd is None:
            session.resolve(frame)
            return
        body, req_id = frame.get("body"), _req_id_of(frame)
        if cmd not in _CALLBACKS or not isinstance(body, dict) or not req_id:
            logger.warning("bot %s: a frame of no known form was ignored", self.bot_id)
            return
        event = body.get("event")
        if isinstance(event, dict) and event.get("eventtype") == "disconnected_event":
            session.displaced = True
            session.ws.transport.abort()  # ends _read; _hold sees why
            return
        self._spawn(self._handle(req_id, body), _HANDLING)

    async def _shutdown(self) -> None:
        """Drain running handlers, hand the rest over, release the lease, close."""
        pending = {t for t in self._tasks if t is not asyncio.current_task()}
        handlers = {t for t in pending if t.get_name() == _HANDLING}
        if self._session is not None:
            logger.info(
                "bot %s: stopping; finishing %d running handler(s) first",
                self.bot_id,
                len(handlers),
            )
        if handlers and self._session is not None:
            await asyncio.wait(handlers, timeout=self.drain_timeout)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        if self._session is not None:
            self._session.fail_all()
            await self._session.ws.close()
            self._session = None
        if self._ready is not None:
            self._ready.clear()
        if self.lease is not None:
            with contextlib.suppress(StoreError):
                await self._in_thread(self.lease.release)
        if self.dedup is not None:
            await self._in_thread(self.dedup.flush)
        for pool in (self._executor, self._io):
            if pool is not None:
                pool.shutdown(wait=False, cancel_futures=True)

    # -- callbacks ----------------------------------------------------------------------------

    def _spawn(self, coroutine: Coroutine[Any, Any, T], name: str = "") -> asyncio.Task[T]:
        task = asyncio.get_running_loop().create_task(coroutine, name=name or None)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _in_thread(self, func: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._io, func, *args)

    async def _store_call(self, func: Callable[..., T], *args: Any) -> T:
        """Run store work inline for a memory store (no I/O), else on the pool."""
        if self._store_in_memory:
            return func(*args)
        return await self._in_thread(func, *args)

    async def _handle(self, req_id: str, body: dict[str, Any]) -> None:
        """Dedup and journal a callback, then answer it."""
        prepared = await self._prepare(req_id, body, recovered=False)
        if prepared is not None:
            await self._process(req_id, *prepared)

    async def _prepare(
        self, req_id: str, body: dict[str, Any], *, recovered: bool
    ) -> tuple[Message, Claim] | None:
        """The message and its claim; None if handled already or elsewhere."""
        message = message_from_json(body)
        claim = await self._store_call(self._begin, req_id, body, message, recovered)
        if claim is None:
            self.stats["duplicates"] += 1
            return None
        return message, claim

    async def _process(self, req_id: str, message: Message, claim: Claim) -> None:
        """Run the handler and reply; the claim is settled whatever happens."""
        try:
            await self._answer(message, req_id)
        except asyncio.CancelledError:
            if self.dedup is not None and claim.state == "first":
                with contextlib.suppress(StoreError):
                    self.dedup.release(claim)  # the journal keeps it for the next holder
            raise
        except Exception:
            logger.exception(
                "bot %s: answering %s/%s failed", self.bot_id, message.type, message.event or "-"
            )
        self.stats["handled"] += 1
        await self._store_call(self._end, req_id, claim)

    def _begin(
        self,
        req_id: str,
        body: Mapping[str, Any],
        message: Message,
        recovered: bool,
    ) -> Claim | None:
        """Claim the message (None: handled already or elsewhere) and journal it."""
        claim = Claim("bypass", "")
        if self.dedup is not None:
            # the key is the msgid's; only an event, which has none, needs the whole document
            plaintext = b"" if message.msg_id else json.dumps(body, ensure_ascii=False).encode()
            key = dedup_key(self.name, message, plaintext, self._dedup_secret)
            claim = self.dedup.claim(key)
            if recovered:
                deadline = time.monotonic() + self.dedup.lease + 2.0
                while claim.state == "waited" and time.monotonic() < deadline:
                    time.sleep(self.dedup.poll)  # the dead holder's claim runs out
                    claim = self.dedup.claim(key)
            if claim.state in ("replay", "waited"):
                return None
        if self._journal is not None:
            try:
                self._journal.add(req_id, body)
            except StoreError as exc:
                logger.warning("bot %s: journal write failed (%s)", self.bot_id, exc)
        return claim

    def _end(self, req_id: str, claim: Claim) -> None:
        if self.dedup is not None:
            self.dedup.complete(claim, "")
        if self._journal is not None:
            with contextlib.suppress(StoreError):
                self._journal.remove(req_id)

    async def _recover(self, lease: OwnerLease, previous: bytes) -> None:
        """Finish what the previous holder left in its journal."""
        key = lease.journal_key(previous)
        raw = await self._in_thread(self.store.get, key)
        entries = json.loads(raw) if raw else {}
        if entries:
            logger.warning(
                "bot %s: re-running %d message(s) the previous holder left unfinished",
                self.bot_id,
                len(entries),
            )
        prepared = [
            (req_id, await self._prepare(req_id, body, recovered=True))
            for req_id, body in entries.items()
        ]
        await self._in_thread(self.store.delete, key)  # our own journal holds them now
        for req_id, found in prepared:
            if found is not None:
                self.stats["recovered"] += 1
                self._spawn(self._process(req_id, *found), _HANDLING)

    async def _answer(self, message: Message, req_id: str) -> None:
        found = self.receiver.resolve(message)
        if found is None:
            return
        call = Call(message, b"", self.name, self.store, self._streams, scope=self.scope)
        run = self._runner.acall(found, call, self._executor)
        if message.event in ("enter_chat", "template_card_event"):
            try:
                result = await asyncio.wait_for(run, self.event_deadline)
            except TimeoutError:
                logger.error(
                    "bot %s: the %s handler took over WeCom's 5 s; its reply is dropped",
                    self.bot_id,
                    message.event,
                )
                return
        else:
            result = await run
        if result is None:
            return
        if aio.is_stream(result):
            with handling(call):  # the chunks see current_message and the scope too
                await self._stream(message, req_id, result)
            return
        reply = self.policy.to_reply(result, call)
        if reply is not None:
            await self._reply(message, req_id, reply)

    # -- replies ------------------------------------------------------------------------------

    async def _request(self, cmd: str, req_id: str, body: Any) -> dict[str, Any]:
        """Send a frame on the live connection (waiting up to ``reply_wait`` for one)."""
        deadline = time.monotonic() + self.reply_wait
        while True:
            if not self._ready.is_set():  # wait_for makes a task: only when it must wait
                left = deadline - time.monotonic()
                try:
                    await asyncio.wait_for(self._ready.wait(), max(left, 0))
                except TimeoutError:
                    raise NotConnected(f"no connection within {self.reply_wait:g} s") from None
            session = self._session
            if session is None:
                await asyncio.sleep(0.01)
                continue
            try:
                return await session.request(cmd, req_id, body)
            except NotConnected:
                if time.monotonic() >= deadline:
                    raise
                await asyncio.sleep(0.01)

    async def _reply(self, message: Message, req_id: str, reply: Reply) -> None:
        try:
            body = reply.render(message)
        except ReplyError as exc:
            logger.error(
                "bot %s: a %s cannot answer %s/%s over the long connection: %s",
                self.bot_id,
                type(reply).__name__,
                message.type,
                message.event or "-",
                exc,
            )
            return
        if isinstance(reply, BotUpdateTemplateCardReply):
            cmd = "aibot_respond_update_msg"
        elif message.event == "enter_chat":
            cmd = "aibot_respond_welcome_msg"
        else:
            cmd = "aibot_respond_msg"
        try:
            await self._request(cmd, req_id, body)
            self.stats["replies"] += 1
        except AckError as exc:
            if exc.errcode in (_ERR_REQ_ID, _ERR_NOT_SUBSCRIBED) and not message.is_event:
                await self._send_instead(message, _proactive_body(reply))
                return
            self._reply_failed(message, exc)
        except LongConnError as exc:
            self._reply_failed(message, exc)

    def _reply_failed(self, message: Message, exc: LongConnError) -> None:
        self.stats["reply_errors"] += 1
        if isinstance(exc, QuotaExceeded):
            self.stats["quota"] += 1
        logger.error(
            "bot %s: the reply to %s/%s was not delivered: %s (%s)",
            self.bot_id,
            message.type,
            message.event or "-",
            exc,
            exc.reason,
        )

    async def _send_instead(self, message: Message, body: dict[str, Any] | None) -> None:
        """Deliver a reply with ``aibot_send_msg`` when its ``req_id`` is no longer usable."""
        chat = _conversation(message)
        if body is None or not chat:
            self._reply_failed(message, NotConnected("the reply's req_id is no longer valid"))
            return
        try:
            await self._request(
                "aibot_send_msg", _req_id("aibot_send_msg"), {"chatid": chat, **body}
            )
            self.stats["replies"] += 1
        except LongConnError as exc:
            self._reply_failed(message, exc)

    async def _stream(self, message: Message, req_id: str, result: Any) -> None:
        """Push a stream: cumulative frames, one in flight, refreshed, finished in time."""
        if message.is_event:
            logger.error("bot %s: events cannot be answered with a stream", self.bot_id)
            return
        stream_id = f"stream_{unique_id()}"
        text: list[str] = []
        done = asyncio.Event()
        changed = asyncio.Event()

        async def produce() -> None:
            try:
                async for chunk in aio.iterate(result, executor=self._executor):
                    if isinstance(chunk, str):
                        text.append(chunk)
                        changed.set()
            except Exception:
                logger.exception("stream %s failed; finishing it with what it has", stream_id)
            finally:
                done.set()
                changed.set()

        producer = self._spawn(produce())
        shown = 0  # characters of the text the bubble has shown
        sent: str | None = None
        first = last = 0.0
        moved = False
        while True:
            if not done.is_set():
                timeout = None
                if sent is not None:
                    now = time.monotonic()
                    timeout = max(
                        min(last + self.stream_refresh, first + self.stream_limit) - now, 0
                    )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), timeout)
            changed.clear()
            content = "".join(text)
            final = done.is_set()
            now = time.monotonic()
            if sent is not None and now - first >= self.stream_limit and not final:
                final = moved = True  # finish the bubble in time; the rest goes by aibot_send_msg
            if not final and content == sent and now - last < self.stream_refresh:
                continue
            frame = StreamReply(stream_id, content, finish=final)
            try:
                await self._request("aibot_respond_msg", req_id, frame.render(message))
            except StreamExpired:
                moved = True
                break
            except AckTimeout as exc:
                logger.warning("bot %s: stream frame unanswered (%s)", self.bot_id, exc)
            except AckError as exc:
                if exc.errcode in (_ERR_REQ_ID, _ERR_NOT_SUBSCRIBED):
                    moved = True
                    break
                self._reply_failed(message, exc)
                producer.cancel()
                return
            except LongConnError as exc:
                self._reply_failed(message, exc)
                producer.cancel()
                return
            else:
                shown = len(content)
            if sent is None:
                first = now
            sent, last = content, now
            if final:
                break
        self.stats["replies"] += 1
        if moved:
            await done.wait()
            rest = "".join(text)[shown:]
            for part in _split_utf8(rest, MAX_STREAM_BYTES):
                await self._send_instead(
                    message, {"msgtype": "markdown", "markdown": {"content": part}}
                )

    # -- API calls ----------------------------------------------------------------------------

    async def send_message(self, chatid: str, message: str | Reply | Mapping[str, Any]) -> None:
        """Push a message to a chat that wrote to the bot (``aibot_send_msg``).

        ``message`` is markdown text, a :class:`~flask_wecom.replies.TemplateCardReply`, or a
        body such as ``{"msgtype": "file", "file": {"media_id": ...}}``.

        :raises QuotaExceeded: the conversation's quota is used up.
        :raises AckError: WeCom refused it (93006: the chat never wrote to the bot).
        :raises NotConnected: no connection came up within ``reply_wait`` seconds.
        """
        if isinstance(message, Mapping):
            body = dict(message)
        else:
            found = _proactive_body(message)
            if found is None:
                raise TypeError(f"{type(message).__name__} cannot be pushed")
            body = found
        await self._request("aibot_send_msg", _req_id("aibot_send_msg"), {"chatid": chatid, **body})

    async def upload_media(self, data: bytes, filename: str, type: str = "file") -> str:
        """Upload a temporary file (init, chunks of 512 KB, finish); return its media_id."""
        chunks = [
            data[i : i + UPLOAD_CHUNK_BYTES] for i in range(0, len(data), UPLOAD_CHUNK_BYTES)
        ] or [b""]
        init = await self._request(
            "aibot_upload_media_init",
            _req_id("aibot_upload_media_init"),
            {
                "type": type,
                "filename": filename,
                "total_size": len(data),
                "total_chunks": len(chunks),
                "md5": hashlib.md5(data, usedforsecurity=False).hexdigest(),
            },
        )
        upload_id = init["body"]["upload_id"]
        for index, chunk in enumerate(chunks):
            await self._request(
                "aibot_upload_media_chunk",
                _req_id("aibot_upload_media_chunk"),
                {
                    "upload_id": upload_id,
                    "chunk_index": index,
                    "base64_data": base64.b64encode(chunk).decode(),
                },
            )
        done = await self._request(
            "aibot_upload_media_finish",
            _req_id("aibot_upload_media_finish"),
            {"upload_id": upload_id},
        )
        return str(done["body"]["media_id"])

    async def download_media(self, url: str, aeskey: str, *, timeout: float = 30.0) -> Media:
        """Download a message's file (valid 5 minutes) and decrypt it with its ``aeskey``.

        :raises DecryptError: the key or the data is wrong.
        :raises OSError: the download failed.
        """

        def fetch() -> Media:
            with urllib.request.urlopen(url, timeout=timeout) as answer:  # noqa: S310 - WeCom's URL
                data = answer.read()
                disposition = answer.headers.get("Content-Disposition", "")
            return Media(decrypt_media(data, aeskey), _filename(disposition))

        return await self._in_thread(fetch)

    def call_blocking(self, coroutine: Awaitable[T], timeout: float | None = 60.0) -> T:
        """Run one of the API calls from a sync handler or another thread and wait for it."""
        if self._loop is None:
            raise NotConnected("the long connection is not running")

        async def wrapped() -> T:
            return await coroutine

        return asyncio.run_coroutine_threadsafe(wrapped(), self._loop).result(timeout)


def _conversation(message: Message) -> str:
    """Where a proactive message for ``message`` goes: the group, else the sender."""
    raw = message.raw
    sender = raw.get("from")
    userid = sender.get("userid", "") if isinstance(sender, Mapping) else ""
    return str(raw.get("chatid") or userid or "")


def _proactive_body(reply: str | Reply) -> dict[str, Any] | None:
    """The ``aibot_send_msg`` body carrying a reply: markdown text, or a card."""
    if isinstance(reply, TemplateCardReply):
        return {"msgtype": "template_card", "template_card": dict(reply.card)}
    content = reply if isinstance(reply, str) else getattr(reply, "content", None)
    if not isinstance(content, str):
        return None
    return {"msgtype": "markdown", "markdown": {"content": content}}


def _split_utf8(text: str, max_bytes: int) -> list[str]:
    """``text`` cut into parts of at most ``max_bytes`` UTF-8 bytes, on character boundaries."""
    parts, data = [], text.encode("utf-8")
    while data:
        end = min(len(data), max_bytes)
        while end < len(data) and data[end] & 0xC0 == 0x80:
            end -= 1
        parts.append(data[:end].decode("utf-8"))
        data = data[end:]
    return [p for p in parts if p.strip()]


_FILENAME_STAR = re.compile(r"filename\*=UTF-8''([^;]+)", re.IGNORECASE)
_FILENAME = re.compile(r'filename="?([^";]+)"?', re.IGNORECASE)


def _filename(disposition: str) -> str:
    """The filename of a Content-Disposition header, preferring ``filename*=UTF-8''``."""
    from urllib.parse import unquote

    found = _FILENAME_STAR.search(disposition)
    if found:
        return unquote(found.group(1))
    found = _FILENAME.search(disposition)
    return found.group(1) if found else ""
