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
from urllib.parse import unquote, urlsplit

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

# The same for KEYS[i] with ARGV[3i-2] the expected value, ARGV[3i-1] the new value and ARGV[3i]
# the ttl in ms, 0 to delete; one character per change: 1 replaced, 0 not, E an error (the key
# holds another type), which leaves the other changes done, as separate commands would.
_COMPARE_AND_SET_MANY_LUA = """
local done = {}
for i, key in ipairs(KEYS) do
    local current = redis.pcall('GET', key)
    if type(current) == 'table' and current.err then
        done[i] = 'E'
    elseif current ~= ARGV[3 * i - 2] then
        done[i] = '0'
    else
        if ARGV[3 * i] == '0' then
            redis.call('DEL', key)
        else
            redis.call('SET', key, ARGV[3 * i - 1], 'PX', ARGV[3 * i])
        end
        done[i] = '1'
    end
end
return table.concat(done)
"""

#: URL schemes, by deployment: one server, a Sentinel group, a Cluster.
_SERVER_SCHEMES = ("redis", "rediss", "unix")
_SENTINEL_SCHEMES = ("redis+sentinel", "rediss+sentinel")
_CLUSTER_SCHEMES = ("redis+cluster", "rediss+cluster")


class RedisStore:
    """A :class:`Store` in Redis, shared by every worker and host that uses the same Redis.

    One server, a Sentinel group (the store follows the master through failovers) or a Redis
    Cluster, named by a URL:

    ============================================================  ===============================
    ``redis://[[user]:password@]host:6379/0``                     one server (``rediss://``: TLS)
    ``unix:///run/redis.sock?db=0``                               one server on a Unix socket
    ``redis+sentinel://[[user]:password@]host:26379[,host:port    the master of Sentinel service
    ...]/mymaster[/db]``                                          ``mymaster`` (``rediss+``: TLS)
    ``redis+cluster://[[user]:password@]host:7000[,host:port      a Cluster, found from any of
    ...]``                                                        these nodes (``rediss+``: TLS)
    ============================================================  ===============================

    The password in a Sentinel URL is the master's; the sentinels are asked without one. A
    Cluster client asks a node for the cluster's layout when it is built, so building the
    store from a ``redis+cluster://`` URL raises if no node answers; a server or Sentinel
    store connects on first use.

    ``add`` is ``SET NX PX``; ``compare_and_set`` is a Lua script run with ``EVALSHA``, sent
    again with ``EVAL`` when the server answers NOSCRIPT (a restart or a failover emptied its
    script cache). Every operation touches exactly one key, so each runs in one Cluster slot
    whatever the key; :meth:`compare_and_set_many` sends its changes in one pipeline, which a
    Cluster client splits per node. Every key gets ``prefix``. A ttl becomes whole
    milliseconds, at least 1. Every Redis failure (connection refused, timeout, error reply)
    is raised as :class:`~flask_wecom.errors.StoreError` from the redis-py exception; the
    message names the operation, never a value. After a restart or a failover the next call
    reconnects. ::

        store = RedisStore("redis+sentinel://10.0.0.1:26379,10.0.0.2:26379/wecom", prefix="myapp:")

    Speed: for one server or a Sentinel group, on the redis-py versions the ``redis`` extra
    allows (5.3 to 8.x, tested at both ends), each thread that uses the store holds one
    connection of the client's pool while it lives (the pool must allow one connection per
    thread) and drives it through redis-py's connection methods (``send_packed_command``,
    ``read_response`` and the connection's retry policy) with commands this class encodes
    itself. That skips the client layer (pool checkout with a socket poll, locks, retry and
    metrics wrappers, response callbacks), which costs several times the CPU of the round
    trip; the claim that runs before every handler is then cheap enough for retry dedup to
    cost under 10% of a 300 µs handler (``bench/dedup_bench.py``). A Cluster, or another
    redis-py version, goes through the public client API instead: correct, only slower. A
    process forked from one that used the store (gunicorn ``--preload``) opens its own
    connections and never touches the parent's sockets.

    :param url_or_client: a URL as above, or a :class:`redis.Redis` client (Sentinel:
        ``Sentinel.master_for(...)``) or :class:`redis.cluster.RedisCluster` built with
        ``decode_responses=False``.
    :param prefix: prepended to every key, so several apps can share one database.
    :param socket_timeout: connect and read timeout in seconds for a client built from a URL.
        Such a client sends a command again once, at once, after a connection error (a pooled
        connection broken by a restart, a master gone in a failover) and never after a timeout
        on one server or Sentinel, where the command may have run; a Cluster client also sends
        a timed-out command once more to the node that then holds the slot (redis-py's Cluster
        client always does). A batch may be sent again too: a change it had already made then
        reports False. A client you pass keeps its own settings, its retry policy included.
    """

    def __init__(
        self,
        url_or_client: str | redis.Redis | redis.RedisCluster,
        *,
        prefix: str = "wecom:",
        socket_timeout: float = 1.0,
    ) -> None:
        try:
            import redis
        except ImportError as e:
            raise ImportError("RedisStore needs redis-py: pip install 'flask-wecom[redis]'") from e
        if isinstance(url_or_client, str):
            client = _client_from_url(url_or_client, socket_timeout)
        else:
            client = url_or_client
            if client.get_connection_kwargs().get("decode_responses"):
                raise ValueError("RedisStore needs a client built with decode_responses=False")
        # redis-py's client methods are untyped.
        self._client: Any = client
        self._prefix = prefix
        self._redis_error: type[Exception] = redis.RedisError
        self._no_script_error: type[Exception] = redis.exceptions.NoScriptError
        self._response_error: type[Exception] = redis.ResponseError
        self._connection_error: type[Exception] = redis.ConnectionError
        # A Cluster client routes each command to its node's pool and is thread-safe as it is.
        self._connections = (
            _ThreadConnections(client.connection_pool)
            if not isinstance(client, redis.RedisCluster) and _held_connections_supported()
            else None
        )

    def add(self, key: str, value: bytes, ttl: float) -> bool:
        """Store ``value`` only if ``key`` has no live value; return True if it was stored."""
        _check_ttl(ttl)
        command = (b"SET", self._key(key), value, b"PX", _milliseconds(ttl), b"NX")
        return self._run("SET NX", command) is not None

    def get(self, key: str) -> bytes | None:
        """Return the live value of ``key``, or None if it is absent or expired."""
        # bytes, never str: the client was checked for decode_responses=False.
        return cast("bytes | None", self._run("GET", (b"GET", self._key(key))))

    def set(self, key: str, value: bytes, ttl: float) -> None:
        """Store ``value`` under ``key``, replacing any value and its expiry."""
        _check_ttl(ttl)
        self._run("SET", (b"SET", self._key(key), value, b"PX", _milliseconds(ttl)))

    def compare_and_set(self, key: str, expected: bytes, value: bytes | None, ttl: float) -> bool:
        """Replace (``value=None``: delete) ``key`` only if its live value equals ``expected``."""
        command = self._compare_and_set_command(key, expected, value, ttl)
        return bool(self._run("compare-and-set script", command))

    def compare_and_set_many(self, changes: Sequence[Change]) -> list[bool]:
        """:meth:`compare_and_set` for each ``(key, expected, value, ttl)``, in one round trip:
        one script call on one server or Sentinel, a pipeline on a Cluster."""
        if not changes:
            return []
        if self._connections is not None:
            return self._compare_and_set_batch(changes)
        commands = [self._compare_and_set_command(*change) for change in changes]
        try:
            pipeline: Any = self._client.pipeline(transaction=False)
            for command in commands:
                pipeline.execute_command(*_named(command))
            replies = pipeline.execute(raise_on_error=False)
            for reply in replies:
                if isinstance(reply, Exception) and not isinstance(reply, self._no_script_error):
                    raise reply
            return [
                bool(self._send(_eval(command)))  # NOSCRIPT: the script cache was lost
                if isinstance(reply, Exception)
                else bool(reply)
                for command, reply in zip(commands, replies, strict=True)
            ]
        except self._redis_error as e:
            raise self._failed("compare-and-set batch", e) from e

    def _compare_and_set_batch(self, changes: Sequence[Change]) -> list[bool]:
        """:meth:`compare_and_set_many` as one call of a script that makes every change."""
        keys: list[bytes | int] = []
        args: list[bytes | int] = []
        for key, expected, value, ttl in changes:
            keys.append(self._key(key))
            if value is None:
                args += (expected, b"", 0)
            else:
                _check_ttl(ttl)
                args += (expected, value, _milliseconds(ttl))
        command = (b"EVALSHA", _COMPARE_AND_SET_MANY_SHA, len(keys), *keys, *args)
        done: bytes = self._run("compare-and-set batch", command)
        if b"E" in done:
            error = self._response_error("a key of the batch holds another type")
            raise self._failed("compare-and-set batch", error) from error
        return [flag == ord("1") for flag in done]

    def delete(self, key: str) -> None:
        """Remove ``key``; no error if it is absent."""
        self._run("DEL", (b"DEL", self._key(key)))

    def close(self) -> None:
        """Close the client's connections (also those of a client passed in)."""
        self._client.close()

    def _key(self, key: str) -> bytes:
        return (self._prefix + key).encode()

    def _compare_and_set_command(
        self, key: str, expected: bytes, value: bytes | None, ttl: float
    ) -> _Command:
        if value is None:
            args: _Command = (expected,)
        else:
            _check_ttl(ttl)
            args = (expected, value, _milliseconds(ttl))
        return (b"EVALSHA", _COMPARE_AND_SET_SHA, b"1", self._key(key), *args)

    def _run(self, operation: str, command: _Command) -> Any:
        """Send ``command`` and return its reply (EVALSHA: sent again as EVAL after NOSCRIPT).

        Every redis-py error is raised as a StoreError naming only ``operation`` and the error type.
        """
        try:
            try:
                return self._send(command)
            except self._no_script_error:
                # Only EVALSHA answers NOSCRIPT: the server lost its script cache (a restart,
                # SCRIPT FLUSH, a failover), and EVAL loads the script again.
                return self._send(_eval(command))
        except self._redis_error as e:
            raise self._failed(operation, e) from e

    def _send(self, command: _Command) -> Any:
        """One command, one reply: on this thread's connection, else through the client."""
        if self._connections is None:
            return self._client.execute_command(*_named(command))
        connection = self._connections.get()
        packed = [_pack(command)]

        def send_and_read() -> Any:
            connection.send_packed_command(packed, check_health=False)
            return connection.read_response()

        return connection.retry.call_with_retry(send_and_read, _Disconnect(connection))

    def _failed(self, operation: str, error: Exception) -> StoreError:
        """The StoreError for ``error``; after a connection error this thread's connection goes
        back to the pool, so the next call takes one that connects afresh (for Sentinel: to the
        master the sentinels name now)."""
        if self._connections is not None and isinstance(error, self._connection_error):
            self._connections.drop()
        return StoreError(f"Redis {operation} failed ({type(error).__name__})")


#: A command as sent: the name and arguments, encoded (an int is sent in decimal).
_Command = tuple[bytes | int, ...]

#: The scripts by their SHA1, as EVALSHA names them.
_SCRIPTS = {
    hashlib.sha1(lua.encode(), usedforsecurity=False).hexdigest().encode(): lua.encode()
    for lua in (_COMPARE_AND_SET_LUA, _COMPARE_AND_SET_MANY_LUA)
}
_COMPARE_AND_SET_SHA, _COMPARE_AND_SET_MANY_SHA = _SCRIPTS


def _eval(command: _Command) -> _Command:
    """The ``EVAL`` form of an ``EVALSHA`` command: it loads the script again."""
    return (b"EVAL", _SCRIPTS[cast("bytes", command[1])], *command[2:])


def _named(command: _Command) -> tuple[str | bytes | int, ...]:
    """``command`` for redis-py's client API, which finds the command by its name as a str."""
    name = command[0]
    return (name.decode() if isinstance(name, bytes) else name, *command[1:])


def _pack(command: _Command) -> bytes:
    """``command`` in the Redis protocol (RESP): an array of bulk strings."""
    parts = [b"*%d\r\n" % len(command)]
    for arg in command:
        if isinstance(arg, int):
            arg = b"%d" % arg
        parts.append(b"$%d\r\n%s\r\n" % (len(arg), arg))
    return b"".join(parts)


class _Disconnect:
    """The retry policy's failure callback: drop the broken connection before sending again."""

    def __init__(self, connection: Any) -> None:
        self._connection = connection

    def __call__(self, error: Exception) -> None:
        self._connection.disconnect()


def _held_connections_supported() -> bool:
    """Whether the installed redis-py is one whose connection methods this module was tested
    with (the ``redis`` extra's range): 5.3 (``get_connection()`` without a command name)
    up to 8.x."""
    import redis

    major, minor = (int(part) for part in redis.__version__.split(".")[:2])
    return (5, 3) <= (major, minor) < (9, 0)


#: This process's generation, one more in each forked child: a held connection knows the process
#: that took it without a getpid() system call per command.
_process = 0


def _forked() -> None:
    global _process
    _process += 1


os.register_at_fork(after_in_child=_forked)


class _ThreadConnections(threading.local):
    """One connection of a redis-py pool per thread, for the process that took it."""

    held: _HeldConnection | None = None

    def __init__(self, pool: redis.ConnectionPool) -> None:
        self._pool = pool

    def get(self) -> Any:
        """This thread's connection, taken from the pool on first use and after a fork."""
        held = self.held
        if held is None or held.process != _process:
            if held is not None:
                held.abandon()
            held = self.held = _HeldConnection(self._pool)
        return held.connection

    def drop(self) -> None:
        """Give this thread's connection back to the pool; the next :meth:`get` takes one."""
        held, self.held = self.held, None
        if held is not None and held.process == _process:
            held.release()


class _HeldConnection:
    """A connection taken from ``pool`` and given back when this object is dropped."""

    def __init__(self, pool: redis.ConnectionPool) -> None:
        self.process = _process
        self.connection: Any = pool.get_connection()
        self._release = weakref.finalize(self, pool.release, self.connection)

    def release(self) -> None:
        """Give the connection back to the pool now."""
        self._release()

    def abandon(self) -> None:
        """In a forked child: close this process's copy of the socket; the parent still uses it."""
        self._release.detach()
        # redis-py shuts a socket down only in the process that opened it; here it is just closed.
        self.connection.disconnect()


def _milliseconds(ttl: float) -> int:
    """A ttl in seconds as whole milliseconds, at least 1 (Redis rejects PX 0)."""
    return max(1, round(ttl * 1000))


def _client_from_url(url: str, socket_timeout: float) -> redis.Redis | redis.RedisCluster:
    """The redis-py client a store URL names (see :class:`RedisStore`)."""
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    options: dict[str, Any] = {
        "socket_timeout": socket_timeout,
        "socket_connect_timeout": socket_timeout,
        "retry": Retry(NoBackoff(), 1, supported_errors=(redis.ConnectionError,)),
    }
    if scheme in _SERVER_SCHEMES:
        return redis.Redis.from_url(url, **options)
    if parts.query or parts.fragment:
        raise ValueError(f"a {scheme}:// URL takes no query or fragment; options are arguments")
    userinfo, _, hosts = parts.netloc.rpartition("@")
    username, _, password = userinfo.partition(":")
    options.update(
        username=unquote(username) or None,
        password=unquote(password) or None,
        ssl=scheme.startswith("rediss"),
    )
    if scheme in _CLUSTER_SCHEMES:
        if parts.path.strip("/") not in ("", "0"):
            raise ValueError("a Redis Cluster has only database 0")
        node: Any = redis.cluster.ClusterNode
        return redis.RedisCluster(
            startup_nodes=[node(*address) for address in _nodes(hosts, 6379)], **options
        )
    service, _, db = parts.path.strip("/").partition("/")
    if not service or not (db or "0").isdigit():
        raise ValueError(f"a {scheme}:// URL ends with /service_name or /service_name/db")
    from redis.sentinel import Sentinel

    timeouts = {"socket_timeout": socket_timeout, "socket_connect_timeout": socket_timeout}
    sentinel = Sentinel(_nodes(hosts, 26379), sentinel_kwargs=timeouts)
    master: redis.Redis = sentinel.master_for(unquote(service), db=int(db or 0), **options)
    return master


def _nodes(hosts: str, default_port: int) -> list[tuple[str, int]]:
    """``host[:port],...`` (IPv6 hosts in brackets) as (host, port) pairs."""
    nodes = []
    for node in hosts.split(","):
        host, colon, port = node.rpartition(":")
        if not colon or host.endswith(":") or not host or port.endswith("]"):
            host, port = node, str(default_port)  # no port (or a bare IPv6 address)
        host = unquote(host).strip("[]")
        if not host or not port.isdigit():
            raise ValueError("a Redis host list is host:port,host:port,...")
        nodes.append((host, int(port)))
    return nodes


def store_from_url(url: str | None) -> Store:
    """Build the store a configuration value names.

    ``None``, ``""`` or ``"memory://"`` give a :class:`MemoryStore`; a ``redis://``,
    ``rediss://``, ``unix://``, ``redis+sentinel://`` or ``redis+cluster://`` URL gives a
    :class:`RedisStore` (see there for the forms). Anything else raises :class:`ValueError`;
    its message shows only the scheme, since a URL may hold a password.
    """
    if not url or url.lower() == "memory://":
        return MemoryStore()
    scheme = urlsplit(url).scheme.lower()
    if scheme in _SERVER_SCHEMES + _SENTINEL_SCHEMES + _CLUSTER_SCHEMES:
        return RedisStore(url)
    raise ValueError(
        f"store URL scheme {scheme!r} is not supported: use exactly 'memory://', or a "
        "redis://, rediss://, unix://, redis+sentinel:// or redis+cluster:// URL"
    )
