"""Key-value stores with expiry, shared by the parts of flask_wecom that must remember things.

One small protocol, :class:`Store`, backs the retry dedup with reply replay (claim a key with a
lease before the handler runs, store the encrypted reply afterwards), the nonce replay cache, the
access-token cache with its refresh lock, and the AI-bot stream state. Two implementations:

- :class:`MemoryStore` for one process: bounded, thread-safe, expiry honoured on every read.
- :class:`RedisStore` for several gunicorn workers or hosts. redis-py is imported only when a
  :class:`RedisStore` is built (``pip install flask-wecom[redis]``).

:func:`store_from_url` picks one from a configuration value::

    store = store_from_url(os.environ.get("WECOM_STORE_URL"))
    if store.add("dedup:" + msg_id, b"", ttl=30):
        ...  # first delivery: run the handler, then store.set("dedup:" + msg_id, reply, ttl=600)

Values are bytes and may be encrypted replies or access tokens: no error message of this module
contains a value.

This module imports only the standard library and :mod:`flask_wecom.errors`.
"""

from __future__ import annotations

import hashlib
import heapq
import math
import os
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, cast
from urllib.parse import urlsplit

from .errors import StoreError

if TYPE_CHECKING:
    import redis

__all__ = ["Change", "MemoryStore", "RedisStore", "Store", "store_from_url"]


#: One change for :meth:`Store.compare_and_set_many`: key, expected value, new value (None:
#: delete) and ttl.
Change = tuple[str, bytes, bytes | None, float]


class Store(Protocol):
    """What flask_wecom needs from a store: six operations on bytes values with expiry.

    ``ttl`` is in seconds (a float is fine) and must be positive. Every operation is atomic with
    respect to the others, also across processes for a shared backend.
    """

    def add(self, key: str, value: bytes, ttl: float) -> bool:
        """Store ``value`` only if ``key`` has no live value; return True if it was stored."""
        ...

    def get(self, key: str) -> bytes | None:
        """Return the live value of ``key``, or None if it is absent or expired."""
        ...

    def set(self, key: str, value: bytes, ttl: float) -> None:
        """Store ``value`` under ``key``, replacing any value and its expiry."""
        ...

    def compare_and_set(self, key: str, expected: bytes, value: bytes | None, ttl: float) -> bool:
        """Replace the value of ``key`` only if it currently equals ``expected``.

        ``value=None`` deletes the key instead (``ttl`` is then ignored). Return True if the
        value was replaced or deleted, False if the key is absent, expired or holds another value.
        """
        ...

    def compare_and_set_many(self, changes: Sequence[Change]) -> list[bool]:
        """:meth:`compare_and_set` for each ``(key, expected, value, ttl)``, in order.

        Each change is atomic on its own, not the batch; a shared backend sends them together.
        """
        ...

    def delete(self, key: str) -> None:
        """Remove ``key``; no error if it is absent."""
        ...


def _check_ttl(ttl: float) -> None:
    """Reject a ttl that is not a time in the future: a caller's bug, not a store failure."""
    if not (0 < ttl < math.inf):
        raise ValueError(f"ttl must be a positive, finite number of seconds, not {ttl!r}")


class MemoryStore:
    """A bounded in-process :class:`Store` for one worker.

    A write to a full store first drops every expired entry and then, if still full, the least
    recently written or read one. Reads and deletes are O(1); writes are O(log n) amortised, for
    the expiry heap that finds expired entries whatever their ttl. Memory stays bounded by
    ``max_items`` whatever the number of distinct keys. Safe to share between threads (one
    lock), not between processes: use :class:`RedisStore` for that. ::

        store = MemoryStore(max_items=10_000)
        store.add("nonce:abc", b"", ttl=7200)

    :param max_items: the most entries kept at once.
    :param clock: seconds on a clock that never goes back; tests inject a fake one.
    """

    def __init__(
        self, max_items: int = 10_000, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if max_items < 1:
            raise ValueError(f"max_items must be at least 1, not {max_items!r}")
        self._max_items = max_items
        self._clock = clock
        self._lock = threading.Lock()
        # key -> (value, expires_at), least recently written or read first.
        self._entries: OrderedDict[str, tuple[bytes, float]] = OrderedDict()
        # A min-heap of (expires_at, key). A pair goes stale when its key is rewritten or deleted;
        # stale pairs are skipped when popped and dropped when the heap is rebuilt.
        self._expiries: list[tuple[float, str]] = []

    def add(self, key: str, value: bytes, ttl: float) -> bool:
        """Store ``value`` only if ``key`` has no live value; return True if it was stored."""
        _check_ttl(ttl)
        with self._lock:
            now = self._clock()
            if self._live_value(key, now) is not None:
                return False
            self._write(key, value, now + ttl, now)
            return True

    def get(self, key: str) -> bytes | None:
        """Return the live value of ``key``, or None if it is absent or expired."""
        with self._lock:
            return self._live_value(key, self._clock())

    def set(self, key: str, value: bytes, ttl: float) -> None:
        """Store ``value`` under ``key``, replacing any value and its expiry."""
        _check_ttl(ttl)
        with self._lock:
            now = self._clock()
            self._write(key, value, now + ttl, now)

    def compare_and_set(self, key: str, expected: bytes, value: bytes | None, ttl: float) -> bool:
        """Replace (``value=None``: delete) ``key`` only if its live value equals ``expected``."""
        if value is not None:
            _check_ttl(ttl)
        with self._lock:
            now = self._clock()
            if self._live_value(key, now) != expected:
                return False
            if value is None:
                del self._entries[key]
            else:
                self._write(key, value, now + ttl, now)
            return True

    def compare_and_set_many(self, changes: Sequence[Change]) -> list[bool]:
        """:meth:`compare_and_set` for each ``(key, expected, value, ttl)``, in order."""
        return [self.compare_and_set(*change) for change in changes]

    def delete(self, key: str) -> None:
        """Remove ``key``; no error if it is absent."""
        with self._lock:
            self._entries.pop(key, None)

    def __len__(self) -> int:
        """The number of entries held, including expired ones not yet dropped."""
        with self._lock:
            return len(self._entries)

    def _live_value(self, key: str, now: float) -> bytes | None:
        """Return the value of ``key`` and mark it used, or drop it if expired. Lock held."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        value, expires_at = entry
        if expires_at <= now:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return value

    def _write(self, key: str, value: bytes, expires_at: float, now: float) -> None:
        """Store an entry, making room first if the store is full. Lock held."""
        if key not in self._entries and len(self._entries) >= self._max_items:
            self._make_room(now)
        self._entries[key] = (value, expires_at)
        self._entries.move_to_end(key)
        heapq.heappush(self._expiries, (expires_at, key))
        if len(self._expiries) > 2 * self._max_items:
            # Mostly stale pairs from rewritten keys: rebuild from the live entries, O(n) once
            # per at least max_items writes.
            self._expiries = [(expiry, k) for k, (_, expiry) in self._entries.items()]
            heapq.heapify(self._expiries)

    def _make_room(self, now: float) -> None:
        """Drop every expired entry, then, if still full, the least recently used one. Lock held."""
        while self._expiries and self._expiries[0][0] <= now:
            expires_at, key = heapq.heappop(self._expiries)
            entry = self._entries.get(key)
            if entry is not None and entry[1] == expires_at:
                del self._entries[key]
        if len(self._entries) >= self._max_items:
            self._entries.popitem(last=False)


# KEYS[1] the key; ARGV[1] the expected value; then nothing (delete) or the new value and ttl in ms.
_COMPARE_AND_SET_LUA = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
    return 0
end
if #ARGV == 1 then
    redis.call('DEL', KEYS[1])
else
    redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
end
return 1
"""
_COMPARE_AND_SET_SHA = hashlib.sha1(
    _COMPARE_AND_SET_LUA.encode(), usedforsecurity=False
).hexdigest()


class RedisStore:
    """A :class:`Store` in Redis, shared by every worker and host that uses the same server.

    ``add`` is ``SET NX PX``; ``compare_and_set`` is a Lua script (``EVALSHA``, sent again with
    ``EVAL`` after a server restart emptied the script cache). Every key gets ``prefix``. A ttl
    becomes whole milliseconds, at least 1. Every Redis failure (connection refused, timeout,
    error reply) is raised as :class:`~flask_wecom.errors.StoreError` from the redis-py
    exception; the message names the operation, never a value. After a Redis restart the next
    call reconnects. ::

        store = RedisStore("redis://localhost:6379/0", prefix="myapp:wecom:")

    Commands go straight to a connection of the client's pool through redis-py's connection API,
    without the per-command work of :class:`redis.Redis` (a pool checkout that polls the socket,
    response callbacks, metrics), which cost about as much CPU as the round trip itself. So each
    thread that uses the store keeps one connection of the pool while it lives (the pool must
    allow one per thread) and gives it back when it ends; a process forked from one that used
    the store (gunicorn ``--preload``) opens its own and never touches the parent's socket.

    :param url_or_client: a ``redis://``, ``rediss://`` or ``unix://`` URL, or a
        :class:`redis.Redis` client built with ``decode_responses=False``.
    :param prefix: prepended to every key, so several apps can share one database.
    :param socket_timeout: connect and read timeout in seconds for a client built from a URL.
        Such a client retries a command once, at once, on a connection error (a pooled connection
        broken by a server restart) and never on a timeout, where the command may have run. A
        client you pass keeps its own settings, its retry policy included.
    """

    def __init__(
        self,
        url_or_client: str | redis.Redis,
        *,
        prefix: str = "wecom:",
        socket_timeout: float = 1.0,
    ) -> None:
        try:
            import redis
            from redis.backoff import NoBackoff
            from redis.retry import Retry
        except ImportError as e:
            raise ImportError("RedisStore needs redis-py: pip install 'flask-wecom[redis]'") from e
        if isinstance(url_or_client, str):
            client = redis.Redis.from_url(
                url_or_client,
                socket_timeout=socket_timeout,
                socket_connect_timeout=socket_timeout,
                retry=Retry(NoBackoff(), 1, supported_errors=(redis.ConnectionError,)),
            )
        else:
            client = url_or_client
            if client.get_connection_kwargs().get("decode_responses"):
                raise ValueError("RedisStore needs a client built with decode_responses=False")
        self._client = client
        self._prefix = prefix
        self._redis_error: type[Exception] = redis.RedisError
        self._no_script_error: type[Exception] = redis.exceptions.NoScriptError
        self._response_error: type[Exception] = redis.ResponseError
        self._connections = _ThreadConnections(client.connection_pool)

    def add(self, key: str, value: bytes, ttl: float) -> bool:
        """Store ``value`` only if ``key`` has no live value; return True if it was stored."""
        _check_ttl(ttl)
        command = (b"SET", self._prefix + key, value, b"PX", _milliseconds(ttl), b"NX")
        return self._run("SET NX", command) is not None

    def get(self, key: str) -> bytes | None:
        """Return the live value of ``key``, or None if it is absent or expired."""
        # bytes, never str: the client was checked for decode_responses=False.
        return cast("bytes | None", self._run("GET", (b"GET", self._prefix + key)))

    def set(self, key: str, value: bytes, ttl: float) -> None:
        """Store ``value`` under ``key``, replacing any value and its expiry."""
        _check_ttl(ttl)
        self._run("SET", (b"SET", self._prefix + key, value, b"PX", _milliseconds(ttl)))

    def compare_and_set(self, key: str, expected: bytes, value: bytes | None, ttl: float) -> bool:
        """Replace (``value=None``: delete) ``key`` only if its live value equals ``expected``."""
        command = self._compare_and_set_command(key, expected, value, ttl)
        return bool(self._run("compare-and-set script", command))

    def compare_and_set_many(self, changes: Sequence[Change]) -> list[bool]:
        """:meth:`compare_and_set` for each ``(key, expected, value, ttl)``, in one round trip.

        Never sent twice: after a connection error some changes may have been made.
        """
        commands = [self._compare_and_set_command(*change) for change in changes]
        if not commands:
            return []
        try:
            connection = self._connections.get()
            try:
                connection.send_packed_command(connection.pack_commands(commands))
                replies = [self._read_reply(connection) for _ in commands]
            except self._redis_error:
                connection.disconnect()  # replies may be left unread: start afresh
                raise
            for reply in replies:
                if isinstance(reply, Exception) and not isinstance(reply, self._no_script_error):
                    raise reply
            return [
                bool(_round_trip(connection, _eval(command)))  # the script cache was lost
                if isinstance(reply, Exception)
                else bool(reply)
                for command, reply in zip(commands, replies, strict=True)
            ]
        except self._redis_error as e:
            raise StoreError(f"Redis compare-and-set batch failed ({type(e).__name__})") from e

    def _compare_and_set_command(
        self, key: str, expected: bytes, value: bytes | None, ttl: float
    ) -> tuple[bytes | str | int, ...]:
        if value is None:
            args: tuple[bytes | int, ...] = (expected,)
        else:
            _check_ttl(ttl)
            args = (expected, value, _milliseconds(ttl))
        return (b"EVALSHA", _COMPARE_AND_SET_SHA, 1, self._prefix + key, *args)

    def _read_reply(self, connection: _Connection) -> Any:
        """The next reply on ``connection``; an error reply is returned, not raised."""
        try:
            return connection.read_response()
        except self._response_error as e:
            return e

    def delete(self, key: str) -> None:
        """Remove ``key``; no error if it is absent."""
        self._run("DEL", (b"DEL", self._prefix + key))

    def close(self) -> None:
        """Close the client's connections (also those of a client passed in)."""
        self._client.close()

    def _run(self, operation: str, command: tuple[bytes | str | int, ...]) -> Any:
        """Send ``command`` on this thread's connection and return its reply.

        Every redis-py error is raised as a StoreError naming only ``operation`` and the error type.
        """
        try:
            connection = self._connections.get()
            try:
                return _round_trip(connection, command)
            except self._no_script_error:
                # Only EVALSHA answers NOSCRIPT: the server lost its script cache (a restart,
                # SCRIPT FLUSH), and EVAL loads the script again.
                return _round_trip(connection, _eval(command))
        except self._redis_error as e:
            raise StoreError(f"Redis {operation} failed ({type(e).__name__})") from e


#: A redis-py connection (``redis.connection.AbstractConnection``), whose methods are untyped.
_Connection = Any


def _eval(command: tuple[bytes | str | int, ...]) -> tuple[bytes | str | int, ...]:
    """The ``EVAL`` form of an ``EVALSHA`` of the compare-and-set script: it loads the script."""
    return (b"EVAL", _COMPARE_AND_SET_LUA, *command[2:])


def _round_trip(connection: _Connection, command: tuple[bytes | str | int, ...]) -> Any:
    """Send ``command``, read its reply; send it again if the connection's retry policy says so."""

    def send_and_read() -> Any:
        connection.send_command(*command)
        return connection.read_response()

    def drop_connection(_: Exception) -> None:
        connection.disconnect()

    return connection.retry.call_with_retry(send_and_read, drop_connection)


class _ThreadConnections(threading.local):
    """One connection of a redis-py pool per thread, for the process that took it."""

    held: _HeldConnection | None = None

    def __init__(self, pool: redis.ConnectionPool) -> None:
        self._pool = pool

    def get(self) -> _Connection:
        """This thread's connection, taken from the pool on first use and after a fork."""
        held = self.held
        if held is None or held.pid != os.getpid():
            if held is not None:
                held.abandon()
            held = self.held = _HeldConnection(self._pool)
        return held.connection


class _HeldConnection:
    """A connection taken from ``pool`` and given back when this object is dropped."""

    def __init__(self, pool: redis.ConnectionPool) -> None:
        self.pid = os.getpid()
        self.connection: _Connection = pool.get_connection()
        self._release = weakref.finalize(self, pool.release, self.connection)

    def abandon(self) -> None:
        """In a forked child: close this process's copy of the socket; the parent still uses it."""
        self._release.detach()
        # redis-py shuts a socket down only in the process that opened it; here it is just closed.
        self.connection.disconnect()


def _milliseconds(ttl: float) -> int:
    """A ttl in seconds as whole milliseconds, at least 1 (Redis rejects PX 0)."""
    return max(1, round(ttl * 1000))


def store_from_url(url: str | None) -> Store:
    """Build the store a configuration value names.

    ``None``, ``""`` or ``"memory://"`` give a :class:`MemoryStore`; a ``redis://``,
    ``rediss://`` or ``unix://`` URL gives a :class:`RedisStore`. Anything else raises
    :class:`ValueError`; its message shows only the scheme, since a URL may hold a password.
    """
    if not url or url.lower() == "memory://":
        return MemoryStore()
    scheme = urlsplit(url).scheme.lower()
    if scheme in ("redis", "rediss", "unix"):
        return RedisStore(url)
    raise ValueError(
        f"store URL scheme {scheme!r} is not supported: use exactly 'memory://', "
        "or a redis://, rediss:// or unix:// URL"
    )
