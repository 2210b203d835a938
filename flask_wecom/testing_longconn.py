"""A fake WeCom long-connection server (智能机器人长连接) for testing AI bots without WeCom.

It speaks the protocol of ``wss://openws.work.weixin.qq.com`` on 127.0.0.1 (plain ``ws://``,
or TLS with an ``ssl_context``) and follows the checklist of the protocol notes: subscribe
first (853000 for bad credentials, the socket left open), one owner per bot (a new subscribe
sends ``disconnected_event`` to the previous connection, keeps acking its pings, refuses its
sends with 846609 and drops it later, by default without a close frame), ping acks (with a
switch to stop acking), per-``req_id`` rules (846605), the 5-second event windows, stream
bubbles with a 6-minute window (846608) and a 20480-byte cap, the 30/min and 1000/h
conversation quota, ``aibot_send_msg`` only to chats that wrote to the bot (93006), chunked
uploads, and an HTTP media stub serving AES-encrypted files with a per-message ``aeskey``.

It runs on a thread of its own, so sync tests use it directly::

    with FakeLongConnServer(bot_id="aibBOT", secret="S") as server:
        bot = LongConnection(receiver, "aibBOT", "S", url=server.url)
        bot.start()
        req_id = server.push_message("hello")
        server.wait_for(lambda: server.stream_text(req_id) == "echo: hello")
        bot.stop()

Time windows read the injectable ``clock``; give a settable one to test the 6-minute and
5-second rules without waiting. Behaviours the protocol notes mark unconfirmed are options
(errcodes 45009 for the quota and 40058 for oversized content are guesses).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import itertools
import json
import logging
import secrets
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Literal

from Crypto.Cipher import AES
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from .wsframes import FrameWriter

logger = logging.getLogger("flask_wecom.testing_longconn")

__all__ = [
    "ERR_EXPIRED_STREAM",
    "ERR_INVALID_CHATID",
    "ERR_INVALID_REQ_ID",
    "ERR_NOT_SUBSCRIBED",
    "ERR_QUOTA",
    "ERR_TOO_LONG",
    "ERR_UNAUTHORIZED",
    "FakeLongConnServer",
    "Sent",
    "StreamBubble",
    "encrypt_media",
]

#: Subscribe refused: wrong bot id or secret.
ERR_UNAUTHORIZED = 853000
#: The ``req_id`` is unknown, expired, or of the wrong kind for the command.
ERR_INVALID_REQ_ID = 846605
#: The stream's window has passed.
ERR_EXPIRED_STREAM = 846608
#: The connection holds no subscription (never subscribed, or displaced).
ERR_NOT_SUBSCRIBED = 846609
#: ``aibot_send_msg`` to a chat that never wrote to the bot.
ERR_INVALID_CHATID = 93006
#: The conversation's quota is used up (the real code is undocumented).
ERR_QUOTA = 45009
#: Content over 20480 bytes (the real code is undocumented).
ERR_TOO_LONG = 40058

MAX_CONTENT_BYTES = 20480
MAX_CHUNK_BYTES = 512 * 1024
MAX_CHUNKS = 100
UPLOAD_TTL = 30 * 60.0
_REPLY_COMMANDS = {
    "aibot_respond_msg": "message",
    "aibot_respond_welcome_msg": "enter_chat",
    "aibot_respond_update_msg": "template_card_event",
}


def encrypt_media(data: bytes, aeskey: str) -> bytes:
    """Encrypt a media file as WeCom serves it: AES-256-CBC, IV = key[:16], PKCS#7 to 32."""
    key = base64.b64decode(aeskey + "=" * (-len(aeskey) % 4))
    pad = 32 - len(data) % 32
    return AES.new(key, AES.MODE_CBC, key[:16]).encrypt(data + bytes((pad,)) * pad)


@dataclass(frozen=True)
class Sent:
    """A frame the bot sent, with the errcode the server answered."""

    connection: int
    cmd: str
    req_id: str
    body: Mapping[str, Any]
    errcode: int
    at: float


@dataclass
class StreamBubble:
    """A stream as the user sees it: the latest content, and whether it is finished."""

    id: str
    req_id: str
    content: str = ""
    finished: bool = False
    frames: int = 0
    started: float = 0.0
    updated: float = 0.0


@dataclass
class _Callback:
    req_id: str
    kind: str  # "message" or the event type
    at: float
    connection: int
    conversation: str


@dataclass
class _Conn:
    id: int
    ws: ServerConnection
    bot_id: str = ""
    subscribed: bool = False
    displaced: bool = False
    last_ping: float = field(default_factory=time.monotonic)
    acks: asyncio.Queue[tuple[float, dict[str, Any]]] = field(default_factory=asyncio.Queue)
    #: Writes frames sent close together in one write, as a busy WeCom server would.
    frames: FrameWriter = field(init=False)

    def __post_init__(self) -> None:
        self.frames = FrameWriter(self.ws)


@dataclass
class _Upload:
    type: str
    filename: str
    total_chunks: int
    md5: str
    created: float
    chunks: dict[int, bytes] = field(default_factory=dict)


class FakeLongConnServer:
    """A local stand-in for WeCom's long-connection endpoint; see the module docstring.

    :param bot_id: the bot id accepted by subscribe (more bots: ``bots``).
    :param secret: its long-connection secret.
    :param bots: bot id -> secret, for several bots.
    :param clock: seconds, for every protocol window (stream, events, quota, uploads, media).
    :param displaced_close_delay: real seconds before a displaced connection is dropped.
    :param displaced_close_frame: drop it with a close frame (default: a bare TCP close).
    :param idle_timeout: real seconds without a ping before a connection is dropped.
    :param ack_delay: real seconds before each answer (acks stay in order per connection).
    :param stream_window: seconds a stream accepts frames (``stream_window_from``: since its
        ``"first"`` frame, or since its ``"last"`` one).
    :param quota_per_minute: replies and pushes per conversation a minute (None: no quota).
    :param quota_per_hour: likewise an hour.
    :param bind_req_id: refuse replies to callbacks pushed on another connection (846605).
    :param ssl_context: serve ``wss://`` with it.
    :param compression: offer permessage-deflate (``"deflate"``) or not (None); whether WeCom
        does is unconfirmed.
    """

    def __init__(
        self,
        bot_id: str = "aibFAKEBOT",
        secret: str = "FAKE_LONGCONN_SECRET",  # noqa: S107 - the fake's own
        *,
        bots: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.monotonic,
        displaced_close_delay: float = 2.0,
        displaced_close_frame: bool = False,
        idle_timeout: float = 300.0,
        ack_delay: float = 0.0,
        stream_window: float = 360.0,
        stream_window_from: Literal["first", "last"] = "first",
        quota_per_minute: int | None = 30,
        quota_per_hour: int | None = 1000,
        reply_window: float = 24 * 3600.0,
        event_window: float = 5.0,
        media_ttl: float = 300.0,
        bind_req_id: bool = False,
        ssl_context: ssl.SSLContext | None = None,
        compression: str | None = "deflate",
    ) -> None:
        self.bots = dict(bots) if bots is not None else {bot_id: secret}
        self.clock = clock
        self.displaced_close_delay = displaced_close_delay
        self.displaced_close_frame = displaced_close_frame
        self.idle_timeout = idle_timeout
        self.ack_delay = ack_delay
        self.stream_window = stream_window
        self.stream_window_from = stream_window_from
        self.quota_per_minute = quota_per_minute
        self.quota_per_hour = quota_per_hour
        self.reply_window = reply_window
        self.event_window = event_window
        self.media_ttl = media_ttl
        self.bind_req_id = bind_req_id
        self.ssl_context = ssl_context
        self.compression = compression
        #: Answer pings (False: a server that went quiet while the socket stays up).
        self.ack_pings = True
        #: Called on the server's loop with every frame the bot sends (pings excluded).
        self.on_sent: Callable[[Sent], None] | None = None
        self._cond = threading.Condition()
        self._ids = itertools.count(1)
        self._conns: dict[int, _Conn] = {}
        self._owners: dict[str, int] = {}
        self._callbacks: dict[str, _Callback] = {}
        self._sent: list[Sent] = []
        self._streams: dict[str, StreamBubble] = {}
        self._quota: dict[str, tuple[deque[float], deque[float]]] = {}
        self._chats: set[str] = set()
        self._uploads: dict[str, _Upload] = {}
        self._media: dict[str, tuple[bytes, str, float]] = {}
        #: Uploaded files: media_id -> (type, filename, bytes).
        self.uploads: dict[str, tuple[str, str, bytes]] = {}
        #: Successful subscribes, failed subscribes, ``disconnected_event`` pushes.
        self.subscribes = 0
        self.refused_subscribes = 0
        self.kicks = 0
        #: Callbacks pushed while no connection held the bot (lost, as WeCom loses them).
        self.dropped = 0
        #: The most connections holding a subscription at the same time, per bot.
        self.max_owners = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> FakeLongConnServer:
        """Listen on a free port of 127.0.0.1 (on a thread of its own)."""
        ready = threading.Event()
        loop = asyncio.new_event_loop()
        self._loop = loop

        async def open_server() -> None:
            self._server = await serve(
                self._serve,
                "127.0.0.1",
                0,
                process_request=self._http,
                ssl=self.ssl_context,
                compression=self.compression,
                ping_interval=None,
                max_size=2**23,
            )
            self.port = self._server.sockets[0].getsockname()[1]
            ready.set()

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.run_until_complete(open_server())
            loop.run_forever()
            loop.close()

        self._thread = threading.Thread(target=run, name="fake-longconn", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the fake long-connection server did not start")
        return self

    def stop(self) -> None:
        """Close every connection and stop listening."""
        loop, self._loop = self._loop, None
        if loop is None:
            return

        async def close() -> None:
            if self._server is not None:
                self._server.close()
                await self._server.wait_closed()

        asyncio.run_coroutine_threadsafe(close(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(10)

    def __enter__(self) -> FakeLongConnServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The WebSocket URL to give the bot."""
        return f"{'wss' if self.ssl_context else 'ws'}://127.0.0.1:{self.port}"

    @property
    def http_url(self) -> str:
        """The base URL of the media stub."""
        return f"{'https' if self.ssl_context else 'http'}://127.0.0.1:{self.port}"

    # -- what tests do ------------------------------------------------------------------------

    def push(self, cmd: str, body: Mapping[str, Any], *, req_id: str | None = None) -> str | None:
        """Push a callback frame to the connection that holds the body's bot.

        :returns: its ``req_id``, or None if no connection holds the bot (the callback is lost).
        """
        req_id = req_id or f"SRV_{secrets.token_hex(8)}"
        bot_id = str(body.get("aibotid") or next(iter(self.bots)))
        with self._cond:
            owner = self._conns.get(self._owners.get(bot_id, 0))
            if owner is None:
                self.dropped += 1
                return None
            kind = "message" if cmd == "aibot_msg_callback" else body["event"]["eventtype"]
            conversation = _conversation(body)
            if kind == "message" and conversation:
                self._chats.add(conversation)
            self._callbacks[req_id] = _Callback(req_id, kind, self.clock(), owner.id, conversation)
        frame = {"cmd": cmd, "headers": {"req_id": req_id}, "body": dict(body)}
        self.push_raw(json.dumps(frame, ensure_ascii=False), bot_id)
        return req_id

    def push_raw(self, text: str, bot_id: str | None = None) -> bool:
        """Send ``text`` as it is to the connection holding the bot (malformed-frame tests)."""
        with self._cond:
            owner = self._conns.get(self._owners.get(bot_id or next(iter(self.bots)), 0))
        loop = self._loop
        if owner is None or loop is None:
            return False
        if threading.current_thread() is self._thread:  # a hook run on the server's loop
            owner.frames.send(text)
        else:
            loop.call_soon_threadsafe(owner.frames.send, text)
        return True

    def push_message(
        self,
        content: str = "hello",
        *,
        msgtype: str = "text",
        userid: str = "zhangsan",
        chatid: str | None = None,
        msgid: str | None = None,
        media: bytes | None = None,
        filename: str = "file.bin",
        bot_id: str | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> str | None:
        """Push an ``aibot_msg_callback``: text by default; ``media`` makes an image or file
        message whose URL serves ``media`` encrypted with a fresh ``aeskey``.

        Giving the same ``msgid`` twice delivers a duplicate. Returns the ``req_id``.
        """
        body: dict[str, Any] = {
            "msgid": msgid or f"MSG_{secrets.token_hex(8)}",
            "aibotid": bot_id or next(iter(self.bots)),
            "chattype": "group" if chatid else "single",
            "from": {"userid": userid},
            "msgtype": msgtype,
        }
        if chatid:
            body["chatid"] = chatid
        if media is not None:
            url, aeskey = self.add_media(media, filename)
            body[msgtype] = {"url": url, "aeskey": aeskey}
        elif msgtype in ("text", "voice"):
            body[msgtype] = {"content": content}
        body.update(extra or {})
        return self.push("aibot_msg_callback", body)

    def push_event(
        self,
        eventtype: str,
        *,
        userid: str = "zhangsan",
        chatid: str | None = None,
        details: Mapping[str, Any] | None = None,
        msgid: str | None = None,
        bot_id: str | None = None,
    ) -> str | None:
        """Push an ``aibot_event_callback`` (``enter_chat``, ``template_card_event`` ...)."""
        event: dict[str, Any] = {"eventtype": eventtype}
        if details is not None:
            event[eventtype] = dict(details)
        body: dict[str, Any] = {
            "msgid": msgid or f"EVT_{secrets.token_hex(8)}",
            "create_time": int(time.time()),
            "aibotid": bot_id or next(iter(self.bots)),
            "from": {"userid": userid},
            "msgtype": "event",
            "event": event,
        }
        if chatid:
            body.update(chatid=chatid, chattype="group")
        return self.push("aibot_event_callback", body)

    def add_media(self, data: bytes, filename: str = "file.bin") -> tuple[str, str]:
        """Serve ``data`` encrypted under a new URL valid ``media_ttl``; return (url, aeskey)."""
        aeskey = base64.b64encode(secrets.token_bytes(32)).decode().rstrip("=")
        token = secrets.token_urlsafe(12)
        with self._cond:
            self._media[token] = (encrypt_media(data, aeskey), filename, self.clock())
        return f"{self.http_url}/media/{token}", aeskey

    def drop(self, bot_id: str | None = None, *, close_frame: bool = False) -> None:
        """Drop the connection holding the bot, as a network failure would."""
        with self._cond:
            conn = self._conns.get(self._owners.get(bot_id or next(iter(self.bots)), 0))
        if conn is not None:
            self._close_threadsafe(conn, close_frame)

    def clear(self) -> None:
        """Forget the recorded frames, streams and callbacks (long runs, benchmarks)."""
        with self._cond:
            self._sent.clear()
            self._streams.clear()
            self._callbacks.clear()

    def sent(self, cmd: str | None = None, req_id: str | None = None) -> list[Sent]:
        """The frames the bot sent (pings excluded), optionally of one command or req_id."""
        with self._cond:
            return [
                s
                for s in self._sent
                if (cmd is None or s.cmd == cmd) and (req_id is None or s.req_id == req_id)
            ]

    def stream(self, req_id: str) -> StreamBubble | None:
        """The latest stream bubble answering the callback ``req_id``."""
        with self._cond:
            found = [b for b in self._streams.values() if b.req_id == req_id]
        return found[-1] if found else None

    def stream_text(self, req_id: str) -> str | None:
        """The text of the finished stream answering ``req_id`` (None until finished)."""
        bubble = self.stream(req_id)
        return bubble.content if bubble is not None and bubble.finished else None

    def owners(self) -> int:
        """How many connections hold a subscription now (all bots)."""
        with self._cond:
            return len(self._owners)

    def open_connections(self) -> int:
        """How many sockets are open now, subscribed or not."""
        with self._cond:
            return len(self._conns)

    def wait_for(self, predicate: Callable[[], Any], timeout: float = 5.0) -> Any:
        """Wait until ``predicate()`` is truthy and return it; AssertionError after ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                value = predicate()
                if value:
                    return value
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"timed out after {timeout} s waiting for {predicate}")
                self._cond.wait(min(left, 0.05))

    # -- the loop's side ----------------------------------------------------------------------

    def _close_threadsafe(self, conn: _Conn, close_frame: bool) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(_hang_up, conn.ws, close_frame)

    def _http(self, connection: ServerConnection, request: Request) -> Response | None:
        if not request.path.startswith("/media/"):
            return None
        with self._cond:
            found = self._media.get(request.path.removeprefix("/media/"))
        if found is None or self.clock() - found[2] > self.media_ttl:
            return connection.respond(HTTPStatus.NOT_FOUND, "expired or unknown media\n")
        data, filename, _ = found
        headers = Headers(
            [
                ("Content-Type", "application/octet-stream"),
                ("Content-Length", str(len(data))),
                ("Content-Disposition", f'attachment; filename="{filename}"'),
            ]
        )
        return Response(200, "OK", headers, data)

    async def _serve(self, ws: ServerConnection) -> None:
        conn = _Conn(next(self._ids), ws)
        with self._cond:
            self._conns[conn.id] = conn
        writer = asyncio.create_task(self._write_acks(conn))
        idle = asyncio.create_task(self._watch_idle(conn))
        try:
            async for raw in ws:
                self._answer(conn, raw)
        except ConnectionClosed:
            pass
        finally:
            writer.cancel()
            idle.cancel()
            with self._cond:
                self._conns.pop(conn.id, None)
                if self._owners.get(conn.bot_id) == conn.id:
                    del self._owners[conn.bot_id]
                self._cond.notify_all()

    async def _write_acks(self, conn: _Conn) -> None:
        while True:
            due, ack = await conn.acks.get()
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            conn.frames.send(json.dumps(ack))

    async def _watch_idle(self, conn: _Conn) -> None:
        while True:
            await asyncio.sleep(min(self.idle_timeout, 1.0))
            if time.monotonic() - conn.last_ping > self.idle_timeout:
                _hang_up(conn.ws, False)
                return

    def _answer(self, conn: _Conn, raw: str | bytes) -> None:
        try:
            frame = json.loads(raw)
            cmd = str(frame.get("cmd", ""))
            req_id = str(frame["headers"]["req_id"])
            body = frame.get("body") or {}
        except (ValueError, KeyError, TypeError, AttributeError):
            return  # WeCom ignores what it cannot read
        sent = None
        with self._cond:
            errcode, extra = self._rule(conn, cmd, req_id, body)
            if cmd not in ("ping", "aibot_subscribe"):
                sent = Sent(conn.id, cmd, req_id, body, errcode, self.clock())
                self._sent.append(sent)
            self._cond.notify_all()
        if sent is not None and self.on_sent is not None:
            try:
                self.on_sent(sent)
            except Exception:  # a test's hook must not take the connection down
                logger.exception("FakeLongConnServer.on_sent failed")
        if cmd == "ping" and not self.ack_pings:
            return
        ack: dict[str, Any] = {
            "headers": {"req_id": req_id},
            "errcode": errcode,
            "errmsg": _ERRMSG.get(errcode, "error"),
        }
        if extra is not None:
            ack["body"] = extra
        if self.ack_delay <= 0 and conn.acks.empty():
            conn.frames.send(json.dumps(ack))  # at once, after any ack still delayed
        else:
            conn.acks.put_nowait((time.monotonic() + self.ack_delay, ack))

    def _rule(
        self, conn: _Conn, cmd: str, req_id: str, body: Mapping[str, Any]
    ) -> tuple[int, dict[str, Any] | None]:
        """The errcode (and ack body) for one frame; called with the lock held."""
        if cmd == "aibot_subscribe":
            return self._subscribe(conn, body), None
        if cmd == "ping":
            conn.last_ping = time.monotonic()
            return 0, None
        if not conn.subscribed or conn.displaced:
            return ERR_NOT_SUBSCRIBED, None
        if cmd in _REPLY_COMMANDS:
            return self._reply(conn, cmd, req_id, body), None
        if cmd == "aibot_send_msg":
            chat = str(body.get("chatid", ""))
            if chat not in self._chats:
                return ERR_INVALID_CHATID, None
            return self._content_error(body) or self._spend_quota(chat), None
        if cmd.startswith("aibot_upload_media_"):
            return self._upload(cmd.removeprefix("aibot_upload_media_"), body)
        return ERR_INVALID_REQ_ID, None

    def _subscribe(self, conn: _Conn, body: Mapping[str, Any]) -> int:
        bot_id, secret = str(body.get("bot_id", "")), body.get("secret")
        known = self.bots.get(bot_id)
        if known is None or not isinstance(secret, str) or not hmac.compare_digest(known, secret):
            self.refused_subscribes += 1
            return ERR_UNAUTHORIZED
        previous = self._conns.get(self._owners.get(bot_id, 0))
        if previous is not None and previous is not conn:
            previous.displaced = True
            self.kicks += 1
            event = {
                "cmd": "aibot_event_callback",
                "headers": {"req_id": f"SRV_{secrets.token_hex(8)}"},
                "body": {
                    "msgid": f"EVT_{secrets.token_hex(8)}",
                    "create_time": int(time.time()),
                    "aibotid": bot_id,
                    "msgtype": "event",
                    "event": {"eventtype": "disconnected_event"},
                },
            }
            asyncio.get_running_loop().create_task(self._displace(previous, event))
        conn.bot_id, conn.subscribed = bot_id, True
        self._owners[bot_id] = conn.id
        self.subscribes += 1
        live = sum(1 for c in self._conns.values() if c.subscribed and not c.displaced)
        self.max_owners = max(self.max_owners, live)
        return 0

    async def _displace(self, conn: _Conn, event: dict[str, Any]) -> None:
        conn.frames.send(json.dumps(event))
        await asyncio.sleep(self.displaced_close_delay)
        _hang_up(conn.ws, self.displaced_close_frame)

    def _reply(self, conn: _Conn, cmd: str, req_id: str, body: Mapping[str, Any]) -> int:
        callback = self._callbacks.get(req_id)
        if callback is None or (self.bind_req_id and callback.connection != conn.id):
            return ERR_INVALID_REQ_ID
        wanted = _REPLY_COMMANDS[cmd]
        if (wanted == "message") != (callback.kind == "message") or (
            wanted != "message" and callback.kind != wanted
        ):
            return ERR_INVALID_REQ_ID
        age = self.clock() - callback.at
        if age > (self.reply_window if wanted == "message" else self.event_window):
            return ERR_INVALID_REQ_ID
        error = self._content_error(body)
        if error:
            return error
        stream = body.get("stream") if body.get("msgtype") == "stream" else None
        if isinstance(stream, Mapping):
            return self._stream_frame(callback, req_id, stream)
        if cmd == "aibot_respond_update_msg":
            return 0
        return self._spend_quota(callback.conversation)

    def _stream_frame(self, callback: _Callback, req_id: str, stream: Mapping[str, Any]) -> int:
        now = self.clock()
        stream_id = str(stream.get("id", ""))
        bubble = self._streams.get(stream_id)
        if bubble is None:
            error = self._spend_quota(callback.conversation)
            if error:
                return error
            bubble = self._streams[stream_id] = StreamBubble(stream_id, req_id, started=now)
            bubble.updated = now
        since = bubble.started if self.stream_window_from == "first" else bubble.updated
        if now - since > self.stream_window:
            return ERR_EXPIRED_STREAM
        if bubble.finished:
            return 0  # repeated final frames are accepted and change nothing
        bubble.content = str(stream.get("content", ""))
        bubble.finished = bool(stream.get("finish"))
        bubble.frames += 1
        bubble.updated = now
        return 0

    def _content_error(self, body: Mapping[str, Any]) -> int:
        msgtype = body.get("msgtype")
        inner = body.get(msgtype) if isinstance(msgtype, str) else None
        content = inner.get("content") if isinstance(inner, Mapping) else None
        if isinstance(content, str) and len(content.encode("utf-8")) > MAX_CONTENT_BYTES:
            return ERR_TOO_LONG
        return 0

    def _spend_quota(self, conversation: str) -> int:
        """Count one message against the conversation's quota (a sliding minute and hour)."""
        limits = ((60.0, self.quota_per_minute), (3600.0, self.quota_per_hour))
        if all(limit is None for _, limit in limits):
            return 0
        now = self.clock()
        windows = self._quota.setdefault(conversation, (deque(), deque()))
        for spent, (span, limit) in zip(windows, limits, strict=True):
            while spent and now - spent[0] >= span:
                spent.popleft()
            if limit is not None and len(spent) >= limit:
                return ERR_QUOTA
        for spent in windows:
            spent.append(now)
        return 0

    def _upload(self, step: str, body: Mapping[str, Any]) -> tuple[int, dict[str, Any] | None]:
        now = self.clock()
        if step == "init":
            total = body.get("total_chunks")
            kind = body.get("type")
            if kind not in ("file", "image", "voice", "video") or not (
                isinstance(total, int) and 1 <= total <= MAX_CHUNKS
            ):
                return ERR_TOO_LONG, None
            upload_id = secrets.token_hex(12)
            self._uploads[upload_id] = _Upload(
                str(kind), str(body.get("filename", "")), total, str(body.get("md5", "")), now
            )
            return 0, {"upload_id": upload_id}
        upload = self._uploads.get(str(body.get("upload_id", "")))
        if upload is None or now - upload.created > UPLOAD_TTL:
            return ERR_INVALID_REQ_ID, None
        if step == "chunk":
            index = body.get("chunk_index")
            try:
                data = base64.b64decode(str(body.get("base64_data", "")), validate=True)
            except ValueError:
                return ERR_TOO_LONG, None
            if not isinstance(index, int) or not 0 <= index <= upload.total_chunks:
                return ERR_TOO_LONG, None
            if len(data) > MAX_CHUNK_BYTES:
                return ERR_TOO_LONG, None
            upload.chunks.setdefault(index, data)  # a repeated chunk is ignored
            return 0, None
        if step != "finish":
            return ERR_INVALID_REQ_ID, None
        indexes = sorted(upload.chunks)
        if indexes not in (
            list(range(upload.total_chunks)),
            list(range(1, upload.total_chunks + 1)),
        ):
            return ERR_TOO_LONG, None
        data = b"".join(upload.chunks[i] for i in indexes)
        if upload.md5 and hashlib.md5(data, usedforsecurity=False).hexdigest() != upload.md5:
            return ERR_TOO_LONG, None
        media_id = f"MEDIA_{secrets.token_hex(8)}"
        self.uploads[media_id] = (upload.type, upload.filename, data)
        del self._uploads[str(body["upload_id"])]
        return 0, {"type": upload.type, "media_id": media_id, "created_at": str(int(time.time()))}


_ERRMSG = {
    0: "ok",
    ERR_UNAUTHORIZED: "invalid bot_id or secret",
    ERR_INVALID_REQ_ID: "invalid req_id",
    ERR_EXPIRED_STREAM: "stream message update expired",
    ERR_NOT_SUBSCRIBED: "aibot websocket not subscribed",
    ERR_INVALID_CHATID: "invalid chatid",
    ERR_QUOTA: "api freq out of limit",
    ERR_TOO_LONG: "invalid parameter",
}


def _conversation(body: Mapping[str, Any]) -> str:
    """The conversation a callback belongs to: the group chatid, else the sender's userid."""
    sender = body.get("from")
    userid = sender.get("userid", "") if isinstance(sender, Mapping) else ""
    return str(body.get("chatid") or userid or "")


def _hang_up(ws: ServerConnection, close_frame: bool) -> None:
    """Close with a close frame, or drop the TCP connection without one (as WeCom does)."""
    if close_frame:
        asyncio.get_running_loop().create_task(ws.close())
    else:
        ws.transport.abort()
