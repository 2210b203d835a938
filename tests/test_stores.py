"""Tests for flask_wecom.stores.

:class:`StoreContract` is the behaviour every :class:`~flask_wecom.stores.Store` must have; it runs
once per store through the subclasses :class:`TestMemoryStore` (fake clock) and
:class:`TestRedisStore` (a real redis-server, real short TTLs). Each subclass then adds what only
its store does: bounds and eviction, or prefixes, restarts and cross-process races.
"""

from __future__ import annotations

import functools
import itertools
import os
import subprocess
import sys
import threading
import time
import tracemalloc
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import pytest
import redis

from flask_wecom.errors import StoreError
from flask_wecom.stores import (
    MemoryStore,
    RedisStore,
    Store,
    _held_connections_supported,
    store_from_url,
)
from harness.redis_server import RedisServer
from tests.support.redis_cluster import RedisCluster
from tests.support.redis_sentinel import RedisSentinelGroup

T = TypeVar("T")

#: A short ttl and a wait past it. Redis TTLs are real time, so both stay well under 0.3 s.
SHORT_TTL = 0.1
PAST_SHORT_TTL = 0.2
LONG_TTL = 60.0

SECRET = b"encrypted-reply-or-token-SECRET"

#: Lets a number of seconds pass for a store's clock: a fake clock's advance, or time.sleep.
Elapse = Callable[[float], None]


class FakeClock:
    """A monotonic clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def add_short_lived(store: Store) -> None:
    assert store.add("k", b"v", SHORT_TTL) is True


def set_short_lived(store: Store) -> None:
    store.set("k", b"v", SHORT_TTL)


def compare_and_set_short_lived(store: Store) -> None:
    store.set("k", b"old", LONG_TTL)
    assert store.compare_and_set("k", b"old", b"v", SHORT_TTL) is True


def race(threads: int, action: Callable[[int], T]) -> list[T]:
    """Run ``action(i)`` in ``threads`` threads released at the same moment; return the results."""
    barrier = threading.Barrier(threads)

    def run(index: int) -> T:
        barrier.wait()
        return action(index)

    with ThreadPoolExecutor(max_workers=threads) as pool:
        return list(pool.map(run, range(threads)))


#: compare_and_set: the key's initial value, the expected one, the new one, the answer, the result.
CAS_ROWS = [
    pytest.param(b"a", b"a", b"b", True, b"b", id="match-replaces"),
    pytest.param(b"a", b"x", b"b", False, b"a", id="mismatch-keeps"),
    pytest.param(None, b"a", b"b", False, None, id="absent-never-matches"),
    pytest.param(None, b"", b"b", False, None, id="absent-is-not-empty"),
    pytest.param(b"", b"", b"b", True, b"b", id="empty-matches-empty"),
    pytest.param(b"a", b"a", None, True, None, id="match-deletes"),
    pytest.param(b"a", b"x", None, False, b"a", id="mismatch-does-not-delete"),
    pytest.param(b"a", b"ab", b"b", False, b"a", id="prefix-is-not-equal"),
]


class StoreContract:
    """The Store contract, run by each subclass.

    A subclass provides the fixtures ``store`` (an empty store) and ``elapse`` (an :data:`Elapse`).
    """

    def test_get_of_unknown_key_is_none(self, store: Store) -> None:
        assert store.get("missing") is None

    def test_add_stores_only_when_absent(self, store: Store) -> None:
        assert store.add("k", b"first", LONG_TTL) is True
        assert store.add("k", b"second", LONG_TTL) is False
        assert store.get("k") == b"first"

    def test_set_replaces_value_and_expiry(self, store: Store, elapse: Elapse) -> None:
        store.set("k", b"old", SHORT_TTL)
        store.set("k", b"new", LONG_TTL)
        elapse(PAST_SHORT_TTL)
        assert store.get("k") == b"new"

    def test_delete_removes_and_frees_the_key(self, store: Store) -> None:
        store.set("k", b"v", LONG_TTL)
        store.delete("k")
        store.delete("never-set")
        assert store.get("k") is None
        assert store.add("k", b"again", LONG_TTL) is True

    @pytest.mark.parametrize(("initial", "expected", "value", "done", "after"), CAS_ROWS)
    def test_compare_and_set(
        self,
        store: Store,
        initial: bytes | None,
        expected: bytes,
        value: bytes | None,
        done: bool,
        after: bytes | None,
    ) -> None:
        if initial is not None:
            store.set("k", initial, LONG_TTL)
        assert store.compare_and_set("k", expected, value, LONG_TTL) is done
        assert store.get("k") == after

    def test_compare_and_set_many_applies_each_change_in_order(self, store: Store) -> None:
        rows = [row.values for row in CAS_ROWS]
        for i, (initial, *_) in enumerate(rows):
            if initial is not None:
                store.set(f"k{i}", initial, LONG_TTL)
        changes = [
            (f"k{i}", expected, value, LONG_TTL) for i, (_, expected, value, *_) in enumerate(rows)
        ]
        assert store.compare_and_set_many(changes) == [done for *_, done, _ in rows]
        assert [store.get(f"k{i}") for i in range(len(rows))] == [after for *_, after in rows]
        # Later changes see earlier ones of the same batch; an empty batch does nothing.
        assert store.compare_and_set_many(
            [("k0", b"b", b"c", LONG_TTL), ("k0", b"c", b"d", LONG_TTL)]
        ) == [True, True]
        assert store.compare_and_set_many([]) == []
        assert store.get("k0") == b"d"

    @pytest.mark.parametrize(
        "write",
        [
            pytest.param(add_short_lived, id="add"),
            pytest.param(set_short_lived, id="set"),
            pytest.param(compare_and_set_short_lived, id="compare_and_set"),
        ],
    )
    def test_every_write_honours_its_ttl(
        self, store: Store, elapse: Elapse, write: Callable[[Store], None]
    ) -> None:
        write(store)
        assert store.get("k") == b"v"
        elapse(PAST_SHORT_TTL)
        assert store.get("k") is None
        assert store.compare_and_set("k", b"v", b"w", LONG_TTL) is False
        assert store.add("k", b"fresh", LONG_TTL) is True
        assert store.get("k") == b"fresh"

    @pytest.mark.parametrize(
        "value",
        [
            pytest.param(b"", id="empty"),
            pytest.param(bytes(range(256)), id="every-byte"),
            pytest.param(b"\x00" * 100_000, id="100kB"),
        ],
    )
    def test_values_are_binary_safe(self, store: Store, value: bytes) -> None:
        store.set("k", value, LONG_TTL)
        assert store.get("k") == value
        assert store.compare_and_set("k", value, None, LONG_TTL) is True

    def test_keys_are_unicode_safe(self, store: Store) -> None:
        store.set("nonce:企业微信", b"1", LONG_TTL)
        store.set("nonce:企业微", b"2", LONG_TTL)
        assert store.get("nonce:企业微信") == b"1"

    @pytest.mark.parametrize(
        "ttl",
        [
            pytest.param(0, id="zero"),
            pytest.param(-1.0, id="negative"),
            pytest.param(float("nan"), id="nan"),
            pytest.param(float("inf"), id="infinite"),
        ],
    )
    @pytest.mark.parametrize(
        "write",
        [
            pytest.param(lambda s, ttl: s.add("k", b"v", ttl), id="add"),
            pytest.param(lambda s, ttl: s.set("k", b"v", ttl), id="set"),
            pytest.param(lambda s, ttl: s.compare_and_set("k", b"v", b"w", ttl), id="cas"),
        ],
    )
    def test_a_ttl_that_is_not_in_the_future_is_refused(
        self, store: Store, write: Callable[[Store, float], Any], ttl: float
    ) -> None:
        store.set("k", b"v", LONG_TTL)
        with pytest.raises(ValueError, match="ttl must be a positive, finite number"):
            write(store, ttl)
        assert store.get("k") == b"v"

    def test_compare_and_set_delete_ignores_ttl(self, store: Store) -> None:
        store.set("k", b"v", LONG_TTL)
        assert store.compare_and_set("k", b"v", None, 0) is True
        assert store.get("k") is None

    def test_add_has_exactly_one_winner_among_racing_threads(self, store: Store) -> None:
        def claim(key: str, racer: int) -> bool:
            return store.add(key, str(racer).encode(), LONG_TTL)

        for round_ in range(20):
            key = f"claim:{round_}"
            won = race(16, functools.partial(claim, key))
            assert won.count(True) == 1
            assert store.get(key) == str(won.index(True)).encode()

    def test_compare_and_set_loses_no_update_between_threads(self, store: Store) -> None:
        store.set("counter", b"0", LONG_TTL)

        def increment(_: int) -> None:
            for _ in range(25):
                while True:
                    current = store.get("counter")
                    assert current is not None
                    bumped = str(int(current) + 1).encode()
                    if store.compare_and_set("counter", current, bumped, LONG_TTL):
                        break

        race(8, increment)
        assert store.get("counter") == b"200"


class TestMemoryStore(StoreContract):
    """The contract with a fake clock, then MemoryStore's bounds and eviction order."""

    @pytest.fixture
    def clock(self) -> FakeClock:
        return FakeClock()

    @pytest.fixture
    def store(self, clock: FakeClock) -> MemoryStore:
        return MemoryStore(clock=clock)

    @pytest.fixture
    def elapse(self, clock: FakeClock) -> Elapse:
        return clock.advance

    def test_expiry_is_exact(self, store: MemoryStore, clock: FakeClock) -> None:
        store.set("k", b"v", 10)
        clock.advance(9.999)
        assert store.get("k") == b"v"
        clock.advance(0.001)
        assert store.get("k") is None

    @pytest.mark.parametrize(
        "max_items",
        [pytest.param(0, id="zero"), pytest.param(-5, id="negative")],
    )
    def test_max_items_below_one_is_refused(self, max_items: int) -> None:
        with pytest.raises(ValueError, match="max_items must be at least 1"):
            MemoryStore(max_items)

    def test_never_holds_more_than_max_items(self) -> None:
        store = MemoryStore(3, clock=FakeClock())
        for key in "abcde":
            assert store.add(key, key.encode(), LONG_TTL) is True
        assert len(store) == 3
        assert [store.get(key) for key in "abcde"] == [None, None, b"c", b"d", b"e"]

    def test_evicts_the_least_recently_used(self) -> None:
        store = MemoryStore(3, clock=FakeClock())
        for key in "abc":
            store.set(key, key.encode(), LONG_TTL)
        store.get("a")
        store.set("d", b"d", LONG_TTL)
        assert [store.get(key) for key in "abcd"] == [b"a", None, b"c", b"d"]

    def test_evicts_every_expired_entry_before_any_live_one(self, clock: FakeClock) -> None:
        store = MemoryStore(4, clock=clock)
        store.set("live-oldest", b"1", LONG_TTL)
        store.set("short-1", b"2", 1)
        store.set("short-2", b"3", 1)
        store.set("live", b"4", LONG_TTL)
        clock.advance(2)
        store.set("new", b"5", LONG_TTL)
        assert len(store) == 3
        assert store.get("live-oldest") == b"1"
        assert store.get("live") == b"4"
        assert store.get("new") == b"5"

    def test_a_rewritten_key_is_not_evicted_by_its_old_expiry(self, clock: FakeClock) -> None:
        store = MemoryStore(2, clock=clock)
        store.set("msg", b"lease", 1)
        store.set("msg", b"reply", LONG_TTL)
        store.set("other", b"x", LONG_TTL)
        clock.advance(2)
        store.get("msg")
        store.set("new", b"y", LONG_TTL)
        assert [store.get(key) for key in ("msg", "other", "new")] == [b"reply", None, b"y"]

    def test_memory_stays_bounded_over_100k_distinct_keys(self) -> None:
        store = MemoryStore(1_000, clock=FakeClock())
        keys = (f"dedup:{i:020d}" for i in range(100_000))
        tracemalloc.start()
        try:
            for key in itertools.islice(keys, 10_000):
                store.add(key, b"r" * 100, LONG_TTL)
            after_warm_up = tracemalloc.get_traced_memory()[0]
            for key in keys:
                store.add(key, b"r" * 100, LONG_TTL)
            growth = tracemalloc.get_traced_memory()[0] - after_warm_up
        finally:
            tracemalloc.stop()
        assert len(store) == 1_000
        # Unbounded, the 90k further keys would take more than 10 MB.
        assert growth < 300_000


class TestRedisStore(StoreContract):
    """The contract on a real redis-server, then prefixes, failures, restarts and processes."""

    @pytest.fixture
    def store(self, redis_url: str) -> Iterator[RedisStore]:
        store = RedisStore(redis_url)
        yield store
        store.close()

    @pytest.fixture
    def elapse(self) -> Elapse:
        return time.sleep

    @pytest.fixture
    def raw(self, redis_server: RedisServer, redis_url: str) -> Iterator[redis.Redis]:
        with redis_server.client() as client:
            yield client

    def test_keys_carry_the_prefix_and_expiry(self, redis_url: str, raw: redis.Redis) -> None:
        store = RedisStore(redis_url, prefix="app1:")
        store.set("k", b"v", 30)
        assert raw.get("app1:k") == b"v"
        assert 29_000 < raw.pttl("app1:k") <= 30_000
        assert RedisStore(redis_url, prefix="app2:").get("k") is None
        store.close()

    def test_a_sub_millisecond_ttl_becomes_one_millisecond(self, store: RedisStore) -> None:
        assert store.add("k", b"v", 0.0001) is True
        time.sleep(0.01)
        assert store.get("k") is None

    def test_accepts_a_client(self, redis_server: RedisServer, redis_url: str) -> None:
        with redis_server.client() as client:
            store = RedisStore(client, prefix="")
            assert store.add("k", b"v", LONG_TTL) is True
            assert client.get("k") == b"v"

    def test_refuses_a_client_that_decodes_responses(self, redis_url: str) -> None:
        with (
            redis.Redis.from_url(redis_url, decode_responses=True) as client,
            pytest.raises(ValueError, match="decode_responses=False"),
        ):
            RedisStore(client)

    @pytest.mark.parametrize(
        "operation",
        [
            pytest.param(lambda s: s.add("k", SECRET, LONG_TTL), id="add"),
            pytest.param(lambda s: s.get("k"), id="get"),
            pytest.param(lambda s: s.set("k", SECRET, LONG_TTL), id="set"),
            pytest.param(lambda s: s.compare_and_set("k", SECRET, SECRET, LONG_TTL), id="cas"),
            pytest.param(lambda s: s.compare_and_set("k", SECRET, None, LONG_TTL), id="cas-delete"),
            pytest.param(lambda s: s.delete("k"), id="delete"),
        ],
    )
    def test_a_stopped_server_raises_store_error_without_values(
        self, store: RedisStore, redis_server: RedisServer, operation: Callable[[Store], Any]
    ) -> None:
        store.set("k", SECRET, LONG_TTL)
        redis_server.stop()
        try:
            started = time.monotonic()
            with pytest.raises(StoreError) as caught:
                operation(store)
            assert time.monotonic() - started < 0.5
        finally:
            redis_server.start()
        assert isinstance(caught.value.original_error, redis.ConnectionError)
        assert SECRET.decode() not in str(caught.value)
        assert caught.value.reason == "store"

    def test_an_error_reply_raises_store_error_without_values(
        self, store: RedisStore, raw: redis.Redis
    ) -> None:
        raw.rpush("wecom:k", SECRET)
        for operation in (
            lambda: store.get("k"),
            lambda: store.compare_and_set("k", SECRET, SECRET, LONG_TTL),
        ):
            with pytest.raises(StoreError) as caught:
                operation()
            assert isinstance(caught.value.original_error, redis.ResponseError)
            assert SECRET.decode() not in str(caught.value)

    def test_recovers_after_a_restart_without_stale_answers(
        self, store: RedisStore, redis_server: RedisServer
    ) -> None:
        assert store.add("claim", b"before", LONG_TTL) is True
        assert store.compare_and_set("claim", b"before", b"reply", LONG_TTL) is True
        redis_server.stop()
        with pytest.raises(StoreError):
            store.add("claim", b"during", LONG_TTL)
        redis_server.start()
        # The first call reuses this thread's connection, which the restart broke; it must answer.
        assert store.get("claim") is None
        assert store.add("claim", b"after", LONG_TTL) is True
        # The restart emptied the script cache too.
        assert store.compare_and_set("claim", b"after", b"reply", LONG_TTL) is True
        assert store.get("claim") == b"reply"

    def test_an_error_reply_leaves_the_connection_in_step(
        self, store: RedisStore, raw: redis.Redis
    ) -> None:
        raw.rpush("wecom:list", b"x")
        store.set("k", b"v", LONG_TTL)
        with pytest.raises(StoreError):
            store.get("list")
        assert store.get("k") == b"v"
        assert store.add("k2", b"w", LONG_TTL) is True

    def test_a_flushed_script_cache_is_reloaded(self, store: RedisStore, raw: redis.Redis) -> None:
        store.set("k", b"a", LONG_TTL)
        assert store.compare_and_set("k", b"a", b"b", LONG_TTL) is True
        raw.script_flush()
        assert store.compare_and_set("k", b"b", b"c", LONG_TTL) is True
        assert store.get("k") == b"c"
        raw.script_flush()
        batch = [("k", b"c", b"d", LONG_TTL), ("k", b"d", b"e", LONG_TTL)]
        assert store.compare_and_set_many(batch) == [True, True]
        assert store.get("k") == b"e"

    def test_an_error_reply_in_a_batch_raises_and_keeps_the_connection_in_step(
        self, store: RedisStore, raw: redis.Redis
    ) -> None:
        raw.rpush("wecom:list", SECRET)
        store.set("k", b"a", LONG_TTL)
        batch = [("list", SECRET, b"x", LONG_TTL), ("k", b"a", b"b", LONG_TTL)]
        with pytest.raises(StoreError) as caught:
            store.compare_and_set_many(batch)
        assert SECRET.decode() not in str(caught.value)
        assert store.get("k") == b"b"  # the rest of the batch ran; replies were all read
        assert store.add("k2", b"w", LONG_TTL) is True

    def test_a_batch_to_a_stopped_server_raises_store_error(
        self, store: RedisStore, redis_server: RedisServer
    ) -> None:
        store.set("k", b"a", LONG_TTL)
        redis_server.stop()
        try:
            with pytest.raises(StoreError, match="batch"):
                store.compare_and_set_many([("k", b"a", b"b", LONG_TTL)])
        finally:
            redis_server.start()
        assert store.compare_and_set_many([("k", b"a", b"b", LONG_TTL)]) == [False]  # empty now

    def test_a_timeout_is_not_sent_again(
        self, redis_url: str, raw: redis.Redis, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The command may have run, so unlike after a connection error it is not resent."""
        sent: list[bytes] = []
        send = redis.Connection.send_packed_command

        def record(connection: redis.Connection, command: Any, check_health: bool = True) -> None:
            sent.append(b"".join(command) if isinstance(command, list) else command)
            send(connection, command, check_health)

        monkeypatch.setattr(redis.Connection, "send_packed_command", record)
        store = RedisStore(redis_url, socket_timeout=0.2)
        raw.client_pause(2000, all=False)  # write commands wait, reads do not
        try:
            with pytest.raises(StoreError) as caught:
                store.set("k", SECRET, LONG_TTL)
        finally:
            raw.client_unpause()
            store.close()
        assert isinstance(caught.value.original_error, redis.TimeoutError)
        assert SECRET.decode() not in str(caught.value)
        assert len([command for command in sent if SECRET in command]) == 1

    def test_threads_get_their_own_answers(self, store: RedisStore) -> None:
        def use(racer: int) -> list[bytes | None]:
            answers = []
            for i in range(50):
                store.set(f"{racer}:{i}", f"{racer}:{i}".encode(), LONG_TTL)
                answers.append(store.get(f"{racer}:{i}"))
            return answers

        for racer, answers in enumerate(race(16, use)):
            assert answers == [f"{racer}:{i}".encode() for i in range(50)]

    def test_connections_of_ended_threads_are_reused(
        self, redis_url: str, raw: redis.Redis
    ) -> None:
        with redis.Redis.from_url(redis_url, client_name="reuse-test") as client:
            store = RedisStore(client)
            for round_ in range(5):
                race(8, lambda racer, round_=round_: store.add(f"{round_}:{racer}", b"v", LONG_TTL))
            named = [c for c in raw.client_list() if c["name"] == "reuse-test"]
        assert 1 <= len(named) <= 8  # not 40: each round's threads got the last round's

    def test_threads_recover_after_a_restart(
        self, store: RedisStore, redis_server: RedisServer
    ) -> None:
        """Each thread's connection breaks; the first call of each still answers."""
        barrier = threading.Barrier(4)

        def add(key: str) -> bool:
            barrier.wait()  # all four threads at once: four connections
            return store.add(key, b"v", LONG_TTL)

        with ThreadPoolExecutor(max_workers=4) as pool:
            assert list(pool.map(add, ["a", "b", "c", "d"])) == [True] * 4
            redis_server.stop()
            redis_server.start()
            assert list(pool.map(add, ["a", "b", "c", "d"])) == [True] * 4

    def test_a_forked_child_opens_its_own_connection(self, store: RedisStore) -> None:
        """After a fork (gunicorn --preload), parent and child never share a socket."""
        store.set("k", b"parent", LONG_TTL)  # this thread's connection is open
        with warnings.catch_warnings():
            # Python 3.12+ warns about forking with threads running (other tests' lease renewers);
            # the child uses none of them.
            warnings.simplefilter("ignore", DeprecationWarning)
            child = os.fork()
        if child == 0:  # pragma: no cover - the child reports through its exit code
            ok = False
            try:
                ok = all(
                    store.add(f"child:{i}", b"c", LONG_TTL) and store.get("k") == b"parent"
                    for i in range(300)
                )
            finally:
                os._exit(0 if ok else 1)
        # Both processes at once: on one socket, answers would go to the wrong process.
        parent_ok = all(
            store.add(f"parent:{i}", b"p", LONG_TTL) and store.get("k") == b"parent"
            for i in range(300)
        )
        _, status = os.waitpid(child, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert parent_ok
        assert store.get("child:299") == b"c"  # the parent's connection outlived the child's exit

    def test_close_then_use_reconnects(self, store: RedisStore) -> None:
        store.set("k", b"v", LONG_TTL)
        store.close()
        assert store.get("k") == b"v"

    def test_add_has_exactly_one_winner_between_processes(
        self, redis_url: str, raw: redis.Redis
    ) -> None:
        keys = 300
        racer = (
            "import sys, time, redis\n"
            "from flask_wecom.stores import RedisStore\n"
            "url, name, keys = sys.argv[1], sys.argv[2], int(sys.argv[3])\n"
            "store, client = RedisStore(url), redis.Redis.from_url(url)\n"
            "client.incr('ready')\n"
            "deadline = time.monotonic() + 10\n"
            "while int(client.get('ready')) < 2 and time.monotonic() < deadline:\n"
            "    time.sleep(0.001)\n"
            "print(*[i for i in range(keys) if store.add(f'race:{i}', name.encode(), 60)])\n"
        )
        racers = {
            name: subprocess.Popen(
                [sys.executable, "-c", racer, redis_url, name, str(keys)],
                stdout=subprocess.PIPE,
                text=True,
            )
            for name in ("one", "two")
        }
        won = {}
        for name, process in racers.items():
            out, _ = process.communicate(timeout=30)
            assert process.returncode == 0
            won[name] = {int(i) for i in out.split()}
        assert won["one"].isdisjoint(won["two"])
        assert won["one"] | won["two"] == set(range(keys))
        for name, indexes in won.items():
            assert {raw.get(f"wecom:race:{i}") for i in indexes} <= {name.encode()}


class TestRedisStoreThroughTheClient(TestRedisStore):
    """All of the above on a redis-py outside the tested range: the store falls back to the
    client API (as for a Cluster) instead of driving pooled connections itself."""

    @pytest.fixture
    def store(self, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[RedisStore]:
        monkeypatch.setattr(redis, "__version__", "9.0.0")
        store = RedisStore(redis_url)
        yield store
        store.close()


@pytest.mark.parametrize(
    ("version", "held"),
    [
        pytest.param("5.2.1", False, id="before-5.3-get_connection-needs-a-command"),
        pytest.param("5.3.0", True, id="lowest-tested"),
        pytest.param(redis.__version__, True, id="installed"),
        pytest.param("8.99.0", True, id="any-8.x"),
        pytest.param("9.0.0", False, id="untested-major"),
    ],
)
def test_held_connections_only_on_the_tested_redis_py_range(
    version: str, held: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The redis extra's range (setup.cfg) is where the store drives connections itself."""
    monkeypatch.setattr(redis, "__version__", version)
    assert _held_connections_supported() is held


class TestSentinelStore(StoreContract):
    """The contract on a real Sentinel group, then a failover under a running store."""

    @pytest.fixture
    def store(self, redis_sentinel_url: str) -> Iterator[RedisStore]:
        store = RedisStore(redis_sentinel_url)
        yield store
        store.close()

    @pytest.fixture
    def elapse(self) -> Elapse:
        return time.sleep

    def test_follows_the_master_through_a_failover(
        self, store: RedisStore, redis_sentinel: RedisSentinelGroup
    ) -> None:
        """Kill the master: calls fail (StoreError) until the replica takes over, then work,
        with the data the replica had and the script loaded again."""
        store.set("kept", b"v", LONG_TTL)
        old = redis_sentinel.master()
        assert old is not None
        with old.client() as client:
            assert client.wait(1, 500) == 1  # the replica has "kept"
        old.kill()
        failures = 0
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                kept = store.get("kept")
                if redis_sentinel.master() not in (None, old):
                    break
            except StoreError:
                failures += 1
            time.sleep(0.05)
        assert redis_sentinel.master() not in (None, old)
        assert failures >= 1  # it was really down for a while
        assert kept == b"v"
        assert store.compare_and_set("kept", b"v", b"w", LONG_TTL) is True
        assert store.get("kept") == b"w"


class TestClusterStore(StoreContract):
    """The contract on a real 3-master Redis Cluster: keys spread over every master."""

    @pytest.fixture
    def store(self, redis_cluster_url: str) -> Iterator[RedisStore]:
        store = RedisStore(redis_cluster_url)
        yield store
        store.close()

    @pytest.fixture
    def elapse(self) -> Elapse:
        return time.sleep

    def test_a_batch_spans_every_master(
        self, store: RedisStore, redis_cluster: RedisCluster
    ) -> None:
        keys = [f"dedup:{i}" for i in range(60)]
        for key in keys:
            store.set(key, b"P", LONG_TTL)
        changes = [(key, b"P", b"D", LONG_TTL) for key in keys] + [("dedup:0", b"P", None, 1.0)]
        assert store.compare_and_set_many(changes) == [True] * len(keys) + [False]
        held = []
        for node in redis_cluster.masters():
            with node.client() as client:
                held.append(client.dbsize())
        assert sorted(held)[0] > 0 and sum(held) == len(keys)
        assert {store.get(key) for key in keys} == {b"D"}


class TestStoreFromUrl:
    """store_from_url maps a configuration value to a store, or refuses it clearly."""

    @pytest.mark.parametrize(
        ("url", "kind"),
        [
            pytest.param(None, MemoryStore, id="none"),
            pytest.param("", MemoryStore, id="empty"),
            pytest.param("memory://", MemoryStore, id="memory"),
            pytest.param("MEMORY://", MemoryStore, id="memory-upper-case"),
            pytest.param("redis://127.0.0.1:6379/0", RedisStore, id="redis"),
            pytest.param("rediss://user:pw@redis.example:6380/1", RedisStore, id="rediss"),
            pytest.param("unix:///run/redis/redis.sock?db=2", RedisStore, id="unix"),
            pytest.param(
                "redis+sentinel://10.0.0.1:26379,[::1]/wecom/1", RedisStore, id="sentinel"
            ),
        ],
    )
    def test_builds_the_named_store(self, url: str | None, kind: type[Store]) -> None:
        assert type(store_from_url(url)) is kind

    @pytest.mark.parametrize(
        ("url", "scheme"),
        [
            pytest.param("memcached://127.0.0.1:11211", "'memcached'", id="other-scheme"),
            pytest.param("localhost:6379", "'localhost'", id="no-scheme"),
            pytest.param("memory://host", "'memory'", id="memory-with-host"),
            pytest.param("http://admin:hunter2@cache.example/", "'http'", id="with-password"),
        ],
    )
    def test_refuses_anything_else_without_echoing_the_url(self, url: str, scheme: str) -> None:
        with pytest.raises(ValueError, match="use exactly 'memory://'") as caught:
            store_from_url(url)
        assert scheme in str(caught.value)
        assert "hunter2" not in str(caught.value)

    @pytest.mark.parametrize(
        ("url", "message"),
        [
            pytest.param("redis+sentinel://h:1/", "ends with /service_name", id="no-service"),
            pytest.param("redis+sentinel://h:1/s/x", "ends with /service_name", id="bad-db"),
            pytest.param("redis+sentinel://:pw@h:x/s", "host:port,host:port", id="bad-port"),
            pytest.param("redis+sentinel://pw@,h/s", "host:port,host:port", id="empty-host"),
            pytest.param("redis+cluster://:pw@h:1/2", "only database 0", id="cluster-db"),
            pytest.param("redis+cluster://:pw@h:1?timeout=1", "no query", id="cluster-query"),
        ],
    )
    def test_refuses_a_malformed_sentinel_or_cluster_url(self, url: str, message: str) -> None:
        with pytest.raises(ValueError, match=message) as caught:
            store_from_url(url)
        assert "pw" not in str(caught.value)

    def test_a_redis_url_reaches_the_server(self, redis_url: str) -> None:
        store = store_from_url(redis_url)
        store.set("k", b"v", LONG_TTL)
        assert RedisStore(redis_url).get("k") == b"v"


def test_memory_store_works_without_redis_installed() -> None:
    """Importing the module and using memory stores must not need redis-py."""
    script = (
        "import sys\n"
        "sys.modules['redis'] = None\n"
        "from flask_wecom.stores import MemoryStore, RedisStore, store_from_url\n"
        "assert store_from_url('memory://').add('k', b'v', 1)\n"
        "try:\n"
        "    RedisStore('redis://127.0.0.1:6379/0')\n"
        "except ImportError as e:\n"
        "    print(e)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=30, check=True
    )
    assert "pip install 'flask-wecom[redis]'" in result.stdout
