"""flask_wecom.dedup: keys, claims, leases and replays, over both stores and in the middleware."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from typing import Any

import pytest
import redis
from werkzeug.test import Client

from flask_wecom import dedup as dedup_module
from flask_wecom.crypto import WeComCrypto
from flask_wecom.dedup import Claim, Deduplicator, dedup_key
from flask_wecom.errors import StoreError
from flask_wecom.messages import parse_message
from flask_wecom.middleware import Outcome, WeComMiddleware
from flask_wecom.stores import MemoryStore, RedisStore, Store
from flask_wecom.testing import CallbackSigner, SignedRequest, app_message_xml
from harness.redis_server import RedisServer
from tests.support.vectors import CORP_ID, KEY, TOKEN


@pytest.fixture(params=["memory", "redis"])
def store(request: pytest.FixtureRequest) -> Store:
    if request.param == "memory":
        return MemoryStore()
    return RedisStore(request.getfixturevalue("redis_url"))


class VirtualTime:
    """A clock that moves only when slept on: waits cost no real time and are exact."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.fixture
def vt() -> VirtualTime:
    return VirtualTime()


def virtual_dedup(vt: VirtualTime, store: MemoryStore, **options: Any) -> Deduplicator:
    """A Deduplicator on virtual time; two on one store stand for two workers on one Redis."""
    options = {"wait": 1.0, "poll": 0.25, **options}
    return Deduplicator(store, clock=vt.clock, sleep=vt.sleep, **options)


def finished(steps: Any) -> Claim:
    """Step a claim_steps generator that must end now; its claim."""
    with pytest.raises(StopIteration) as done:
        next(steps)
    return done.value.value  # type: ignore[no-any-return]


# -- keys ----------------------------------------------------------------------------------------


def event_xml(**fields: object) -> bytes:
    body = {"FromUserName": "sys", "CreateTime": 1700000000, "Event": "change_contact", **fields}
    return app_message_xml("event", body, to_user=CORP_ID).encode()


SECRET = b"k" * 32


def keyed(identity: bytes, secret: bytes = SECRET) -> str:
    return hmac.new(secret, identity, hashlib.sha256).hexdigest()[:32]


KEYS = [
    pytest.param(
        app_message_xml("text", {"Content": "a", "MsgId": 2**60 + 1}, to_user="c").encode(),
        "dedup:ep:" + keyed(b"id:1152921504606846977"),
        id="message-msgid",
    ),
    pytest.param(
        b'{"msgid": "CAIQ16", "msgtype": "text"}', "dedup:ep:" + keyed(b"id:CAIQ16"), id="aibot"
    ),
    pytest.param(
        b'{"msgid": "", "msgtype": "text", "text": {"content": "a"}}',
        "dedup:ep:" + keyed(b'doc:{"msgid": "", "msgtype": "text", "text": {"content": "a"}}'),
        id="aibot-empty-msgid-keys-on-the-document",
    ),
]


@pytest.mark.parametrize(("plaintext", "expected"), KEYS)
def test_message_keys(plaintext: bytes, expected: str) -> None:
    assert dedup_key("ep", parse_message(plaintext), plaintext, SECRET) == expected


def test_event_keys_are_an_hmac_of_the_whole_plaintext() -> None:
    """Same sender and second, different change: two keys (the WxJava false-duplicate bug),
    and neither is a plain hash anyone could compute from a guessed event."""
    first = event_xml(ChangeType="delete_user", UserID="lisi")
    second = event_xml(ChangeType="delete_user", UserID="wangwu")
    keys = {dedup_key("ep", parse_message(p), p, SECRET) for p in (first, second, first)}
    assert keys == {"dedup:ep:" + keyed(b"doc:" + p) for p in (first, second)}
    assert not any(hashlib.sha256(p).hexdigest()[:32] in k for k in keys for p in (first, second))
    assert dedup_key("ep", parse_message(first), first, b"x" * 32) not in keys


def test_keys_are_scoped_per_endpoint() -> None:
    plaintext = event_xml(ChangeType="delete_user", UserID="lisi")
    message = parse_message(plaintext)
    assert dedup_key("agent-a", message, plaintext, SECRET) != dedup_key(
        "agent-b", message, plaintext, SECRET
    )


# -- claims ----------------------------------------------------------------------------------------


def test_first_then_replay_then_release(store: Store) -> None:
    dedup = Deduplicator(store, wait=0, write_behind=0)
    first = dedup.claim("k")
    assert first.state == "first"
    dedup.complete(first, "CIPHERTEXT", credential=1)
    replay = dedup.claim("k")
    assert (replay.state, replay.reply, replay.credential) == ("replay", "CIPHERTEXT", 1)

    other = dedup.claim("k2")
    dedup.release(other)
    assert dedup.claim("k2").state == "first"


def test_empty_reply_is_replayed_as_empty(store: Store) -> None:
    dedup = Deduplicator(store, wait=0, write_behind=0)
    dedup.complete(dedup.claim("k"), "")
    assert (dedup.claim("k").state, dedup.claim("k").reply) == ("replay", "")


@pytest.mark.parametrize(
    ("reply", "credential"),
    [
        pytest.param("CIPHERTEXT", None, id="default-credential-is-the-newest"),
        pytest.param("", 1, id="empty"),
        pytest.param("a:b:c", 12, id="colons-in-the-reply"),
    ],
)
def test_a_reply_is_replayed_exactly(reply: str, credential: int | None) -> None:
    dedup = Deduplicator(MemoryStore(), wait=0)
    first = dedup.claim("k")
    if credential is None:
        dedup.complete(first, reply)
    else:
        dedup.complete(first, reply, credential)
    assert dedup.claim("k") == Claim("replay", "k", reply=reply, credential=credential or 0)


@pytest.mark.parametrize(
    "stored",
    [
        pytest.param(b"Dx:CIPHERTEXT", id="credential-not-a-number"),
        pytest.param(b"D:CIPHERTEXT", id="credential-empty"),
        pytest.param(b"DCIPHERTEXT", id="no-separator"),
        pytest.param("D1:密文".encode(), id="reply-not-ascii"),
    ],
)
def test_a_corrupt_stored_reply_bypasses_dedup(
    stored: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    """A value no Deduplicator wrote is a store failure: the handler runs, nothing raises."""
    store = MemoryStore()
    store.set("k", stored, 60)
    with caplog.at_level(logging.ERROR, logger="flask_wecom"):
        assert Deduplicator(store, wait=0).claim("k") == Claim("bypass", "k")
    assert [r.getMessage() for r in caplog.records] == [
        "dedup store failed (the stored reply is malformed); handling callbacks without dedup"
    ]


def test_completing_a_claim_that_is_not_a_first_changes_nothing(
    redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Only a first arrival holds the lease: settling a replay or a wait writes nothing."""
    store = RedisStore(redis_url)
    dedup = Deduplicator(store, wait=0, write_behind=0)
    dedup.complete(dedup.claim("k"), "FIRST")
    held = dedup.claim("held")
    with caplog.at_level(logging.WARNING, logger="flask_wecom"):
        dedup.complete(dedup.claim("k"), "SECOND")
        dedup.release(dedup.claim("held"))
    assert dedup.claim("k").reply == "FIRST"
    assert dedup.claim("held") == Claim("waited", "held")
    assert caplog.records == []
    dedup.release(held)


@pytest.mark.parametrize(
    ("store_kind", "expected"), [("memory", 0.0), ("redis", 0.05)], ids=["memory", "redis"]
)
def test_replies_are_written_behind_only_to_a_shared_store(
    store_kind: str, expected: float, request: pytest.FixtureRequest
) -> None:
    store = (
        MemoryStore()
        if store_kind == "memory"
        else RedisStore(request.getfixturevalue("redis_url"))
    )
    assert Deduplicator(store).write_behind == expected


def test_a_reply_written_behind_reaches_other_workers_within_the_interval(redis_url: str) -> None:
    """Another worker's retry waits on the claim until the batch is written, then replays."""
    dedup = Deduplicator(RedisStore(redis_url), write_behind=0.2)
    other = Deduplicator(RedisStore(redis_url), wait=0, poll=0.01)
    replies = {f"k{i}": dedup.claim(f"k{i}") for i in range(5)}
    for key, claim in replies.items():
        dedup.complete(claim, key.upper())
    assert {other.claim(key).state for key in replies} == {"waited"}
    time.sleep(0.6)
    assert [other.claim(key).reply for key in replies] == ["K0", "K1", "K2", "K3", "K4"]


def test_flush_writes_pending_replies_and_releases_at_once(redis_url: str) -> None:
    dedup = Deduplicator(RedisStore(redis_url), write_behind=60)
    other = Deduplicator(RedisStore(redis_url), wait=0)
    dedup.complete(dedup.claim("done"), "R")
    dedup.release(dedup.claim("failed"))
    dedup.flush()
    assert other.claim("done").reply == "R"
    assert other.claim("failed").state == "first"


def test_pending_replies_are_written_at_exit(redis_url: str) -> None:
    """A worker that exits normally leaves no claim unfinished."""
    script = (
        "import sys\n"
        "from flask_wecom.dedup import Deduplicator\n"
        "from flask_wecom.stores import RedisStore\n"
        "dedup = Deduplicator(RedisStore(sys.argv[1]), write_behind=60)\n"
        "dedup.complete(dedup.claim('k'), 'AT-EXIT')\n"
    )
    subprocess.run([sys.executable, "-c", script, redis_url], check=True, timeout=30)
    # Read as stored (credential 0, the reply), not through a Deduplicator: this slow test
    # then runs no dedup code in this process, and mutation testing leaves it out.
    assert RedisStore(redis_url).get("k") == b"D0:AT-EXIT"


def test_a_lost_lease_is_logged_when_written_behind(
    redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    store = RedisStore(redis_url)
    dedup = Deduplicator(store, write_behind=60)
    claim = dedup.claim("k")
    store.set("k", b"Psomeone-else", 10)  # the lease ran out and another worker claimed it
    dedup.complete(claim, "LATE")
    with caplog.at_level(logging.WARNING, logger="flask_wecom"):
        dedup.flush()
    assert store.get("k") == b"Psomeone-else"
    assert [r.getMessage() for r in caplog.records] == [
        "dedup lease for k was lost before the handler finished"
    ]


def test_retry_waits_for_the_running_first(store: Store) -> None:
    dedup = Deduplicator(store, wait=2.0, poll=0.01)
    first = dedup.claim("k")
    finisher = threading.Timer(0.05, dedup.complete, (first, "LATE"))
    finisher.start()
    started = time.monotonic()
    retry = dedup.claim("k")
    assert (retry.state, retry.reply) == ("replay", "LATE")
    assert 0.04 < time.monotonic() - started < 1.5


def test_retry_gives_up_waiting_within_the_bound(store: Store) -> None:
    dedup = Deduplicator(store, wait=0.05, poll=0.01)
    dedup.claim("k")
    started = time.monotonic()
    assert dedup.claim("k").state == "waited"
    assert 0.05 <= time.monotonic() - started < 1.0


def test_a_retry_waits_exactly_wait_seconds(vt: VirtualTime) -> None:
    dedup = virtual_dedup(vt, MemoryStore(clock=vt.clock))
    dedup.claim("k")
    assert dedup.claim("k") == Claim("waited", "k")
    assert vt.slept == [0.25] * 4


def test_only_one_retry_waits_the_others_are_answered_at_once(vt: VirtualTime) -> None:
    """One waiting request per key, in this worker and in any other sharing the store."""
    store = MemoryStore(clock=vt.clock)
    here, there = virtual_dedup(vt, store), virtual_dedup(vt, store)
    first = here.claim("k")
    waiting = here.claim_steps("k")
    assert next(waiting) == 0.25
    assert [here.claim("k"), there.claim("k")] == [Claim("waited", "k")] * 2
    assert vt.slept == []  # neither waited
    here.complete(first, "R", credential=1)
    assert finished(waiting) == Claim("replay", "k", reply="R", credential=1)


@pytest.mark.parametrize("waiter", ["here", "there"])
def test_once_a_waiting_retry_left_the_next_may_wait(vt: VirtualTime, waiter: str) -> None:
    """A waiting request that goes away (an ASGI client hung up) lets the next one wait,
    also in a worker that was refused while it waited."""
    store = MemoryStore(clock=vt.clock)
    dedups = {"here": virtual_dedup(vt, store), "there": virtual_dedup(vt, store)}
    dedups["here"].claim("k")
    waiting = dedups[waiter].claim_steps("k")
    next(waiting)
    assert dedups["here"].claim("k") == Claim("waited", "k")
    waiting.close()
    for dedup in dedups.values():
        steps = dedup.claim_steps("k")
        assert next(steps) == 0.25
        steps.close()


def test_a_dead_waiters_mark_lasts_wait_seconds(vt: VirtualTime) -> None:
    """A worker that died while waiting keeps other retries from waiting only for ``wait``."""
    store = MemoryStore(clock=vt.clock)
    dead, alive = virtual_dedup(vt, store), virtual_dedup(vt, store)
    dead.claim("k")
    waiting = dead.claim_steps("k")
    next(waiting)  # and the worker dies: nothing removes its mark
    vt.now = 0.9
    assert alive.claim("k") == Claim("waited", "k")
    vt.now = 1.1
    steps = alive.claim_steps("k")
    assert next(steps) == 0.25
    steps.close()
    waiting.close()


def test_a_lease_expiring_between_add_and_get_is_claimed_again() -> None:
    """The claim's add finds the key taken, the get finds it gone: claim again, never fail."""
    reads = itertools.count()
    store = MemoryStore(clock=lambda: float(next(reads)))
    store.add("k", b"Pdying", 1.5)  # read 0: lives until 1.5
    dedup = Deduplicator(store, wait=0)
    claim = dedup.claim("k")  # add at 1 (taken), get at 2 (expired), add at 3
    assert (claim.state, claim.key) == ("first", "k")


def test_lease_is_renewed_while_the_handler_runs(redis_url: str) -> None:
    """A slow but living handler keeps its claim well past one lease."""
    dedup = Deduplicator(RedisStore(redis_url), lease=0.3, wait=0, poll=0.01)
    first = dedup.claim("k")
    time.sleep(0.7)
    assert dedup.claim("k").state == "waited"
    dedup.complete(first, "DONE")
    dedup.flush()
    assert dedup.claim("k").reply == "DONE"


def test_a_claim_in_a_shared_store_lives_one_lease(redis_url: str) -> None:
    """What a worker that dies mid-handler leaves behind expires after ``lease``, not ``ttl``."""
    dedup = Deduplicator(RedisStore(redis_url, prefix="lease:"), lease=0.5)
    claim = dedup.claim("k")
    assert 0 < redis.Redis.from_url(redis_url).pttl("lease:k") <= 500
    dedup.release(claim)


def test_a_dead_workers_claim_expires(redis_url: str) -> None:
    """A claim nobody renews (its worker died) lets the next retry run the handler again."""
    store = RedisStore(redis_url)
    store.add("k", b"Pdead-worker", 0.1)
    dedup = Deduplicator(store, wait=0.02, poll=0.01)
    assert dedup.claim("k").state == "waited"
    time.sleep(0.12)
    assert dedup.claim("k").state == "first"


def test_store_failure_bypasses_dedup_and_logs_once(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    dedup = Deduplicator(RedisStore(redis_server.url), wait=0)
    redis_server.stop()
    try:
        with caplog.at_level(logging.ERROR, logger="flask_wecom"):
            claims = [dedup.claim(f"k{i}") for i in range(3)]
            for claim in claims:
                dedup.complete(claim, "X")
    finally:
        redis_server.start()
    assert [c.state for c in claims] == ["bypass"] * 3
    # (Keeper threads of other tests' claims may log their own failure from their thread.)
    mine = [r for r in caplog.records if r.thread == threading.get_ident()]
    assert len([r for r in mine if "dedup store failed" in r.message]) == 1


def failures_logged(records: list[logging.LogRecord]) -> list[str]:
    """The store-failure lines, each checked to name its cause (a StoreError)."""
    lines = [r for r in records if r.getMessage().startswith("dedup store failed")]
    for record in lines:
        assert isinstance(record.args, tuple) and isinstance(record.args[0], StoreError)
        assert record.getMessage() == (
            f"dedup store failed ({record.args[0]}); handling callbacks without dedup"
        )
    return [str(r.threadName) for r in lines]


def test_store_failures_are_logged_at_most_once_a_minute_with_their_cause(
    redis_server: RedisServer, vt: VirtualTime, caplog: pytest.LogCaptureFixture
) -> None:
    dedup = Deduplicator(RedisStore(redis_server.url), wait=0, clock=vt.clock, sleep=vt.sleep)
    redis_server.stop()
    try:
        logged = []
        for now in (0.0, 59.5, 60.0, 119.5, 120.5):
            vt.now = now
            caplog.clear()
            with caplog.at_level(logging.ERROR, logger="flask_wecom"):
                assert dedup.claim("k") == Claim("bypass", "k")
            logged.append(len(failures_logged(caplog.records)))
    finally:
        redis_server.start()
    assert logged == [1, 0, 1, 0, 1]


def test_store_failures_while_waiting_and_renewing_are_logged_with_their_cause(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """The store fails under a waiting retry (its mark cannot be removed) and under the
    keeper renewing a lease: each logs its cause."""
    store = RedisStore(redis_server.url)
    holder, waiter = Deduplicator(store, lease=0.15, wait=5), Deduplicator(store, wait=5)
    finisher = Deduplicator(store, write_behind=0)
    holder.claim("k")
    finishing = finisher.claim("k2")
    waiting = waiter.claim_steps("k")
    next(waiting)
    with caplog.at_level(logging.ERROR, logger="flask_wecom"):
        redis_server.stop()
        try:
            waiting.close()
            finisher.complete(finishing, "R")
            time.sleep(0.2)  # the keeper renews every 0.05 s
        finally:
            redis_server.start()
    threads = failures_logged(caplog.records)
    assert threads.count(threading.current_thread().name) == 2  # the waiter, the finisher
    assert "flask-wecom-dedup" in threads


@pytest.mark.parametrize(
    "options",
    [{"ttl": 0}, {"lease": -1}, {"poll": 0}, {"wait": -0.1}, {"write_behind": -1}],
    ids=["ttl", "lease", "poll", "wait", "write_behind"],
)
def test_options_are_validated(options: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=f"^{next(iter(options))} must be "):
        Deduplicator(**options)  # type: ignore[arg-type]


# -- through the middleware --

NOW = 1_700_000_000


class CountingApp:
    """Answers text with a fresh counter value; 500 while ``failing``."""

    def __init__(self) -> None:
        self.executions = 0
        self.failing = False

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        self.executions += 1
        if self.failing:
            start_response("500 Internal Server Error", [("Content-Type", "text/plain")])
            return [b"down"]
        start_response("200 OK", [("Content-Type", "text/xml")])
        return [f"<xml>run {self.executions} {environ['wecom.dedup']}</xml>".encode()]


def retry_of(signer: CallbackSigner, request: SignedRequest) -> SignedRequest:
    """What WeCom resends: the same plaintext, a fresh nonce and timestamp."""
    return signer.callback(request.plaintext, timestamp=NOW + 5)


def send(client: Client, request: SignedRequest) -> Any:
    return client.post(request.url("/wecom"), data=request.body)


@pytest.fixture
def signer() -> CallbackSigner:
    return CallbackSigner(TOKEN, KEY, CORP_ID, clock=lambda: NOW)


def middleware_for(app: CountingApp, outcomes: list[Outcome], **options: Any) -> Client:
    return Client(
        WeComMiddleware(
            app,
            WeComCrypto(TOKEN, KEY, CORP_ID),
            clock=lambda: NOW,
            hooks=[outcomes.append],
            **options,
        )
    )


def test_retries_get_the_same_reply_signed_for_their_own_nonce(signer: CallbackSigner) -> None:
    app, outcomes = CountingApp(), []
    client = middleware_for(app, outcomes)
    request = signer.text("hi")
    sends = [request] + [retry_of(signer, request) for _ in range(3)]
    replies = [signer.decrypt_reply(send(client, r).get_data(), r) for r in sends]
    assert app.executions == 1
    assert replies == [b"<xml>run 1 first</xml>"] * 4
    assert [o.outcome for o in outcomes] == ["accepted", "replayed", "replayed", "replayed"]
    assert [o.dedup for o in outcomes] == ["first", "replay", "replay", "replay"]


def test_a_failed_first_run_is_run_again(signer: CallbackSigner) -> None:
    app, outcomes = CountingApp(), []
    client = middleware_for(app, outcomes)
    request = signer.text("hi")
    app.failing = True
    assert send(client, request).status_code == 500
    app.failing = False
    retry = retry_of(signer, request)
    assert signer.decrypt_reply(send(client, retry).get_data(), retry) == b"<xml>run 2 first</xml>"


def test_an_app_exception_releases_the_claim(signer: CallbackSigner) -> None:
    calls: list[int] = []

    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("crash")
        start_response("200 OK", [])
        return [b"<xml>ok</xml>"]

    client = Client(WeComMiddleware(app, WeComCrypto(TOKEN, KEY, CORP_ID), clock=lambda: NOW))
    request = signer.text("hi")
    with pytest.raises(RuntimeError):
        send(client, request)
    assert send(client, retry_of(signer, request)).status_code == 200
    assert len(calls) == 2


def test_dedup_off_runs_every_retry(signer: CallbackSigner) -> None:
    app, outcomes = CountingApp(), []
    client = middleware_for(app, outcomes, dedup=False)
    request = signer.text("hi")
    for r in [request, retry_of(signer, request)]:
        send(client, r)
    assert app.executions == 2
    assert [o.dedup for o in outcomes] == [None, None]


def test_a_forked_worker_neither_finishes_nor_loses_the_parents_work(redis_url: str) -> None:
    """With gunicorn --preload the workers fork from a process that may hold claims."""
    dedup = Deduplicator(RedisStore(redis_url), write_behind=60)
    dedup.complete(dedup.claim("parent"), "PARENT")  # pending in the parent
    held = dedup.claim("held")
    child = os.fork()
    if child == 0:  # the worker: its own claims work and are written; the parent's are not its own
        code = 0
        try:
            dedup.complete(dedup.claim("child"), "CHILD")
            dedup.flush()
            code = 0 if not dedup._held else 1
        except BaseException:
            code = 2
        os._exit(code)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    other = Deduplicator(RedisStore(redis_url), wait=0)
    assert other.claim("child").reply == "CHILD"
    assert other.claim("parent").state == "waited"  # still the parent's pending claim
    dedup.flush()
    dedup.release(held)
    dedup.flush()
    assert other.claim("parent").reply == "PARENT"
    assert other.claim("held").state == "first"


def test_a_memory_store_needs_no_keeper_thread(vt: VirtualTime) -> None:
    """Claims in process memory die with the process: nothing to renew, no thread to run."""
    dedup = Deduplicator(MemoryStore(clock=vt.clock), lease=0.3, wait=0)
    claim = dedup.claim("held")
    vt.now = 500.0  # far past the lease: a memory claim is not lost for want of renewal
    assert dedup.claim("held").state == "waited"
    assert dedup._keeper is None
    dedup.complete(claim, "R")
    assert dedup.claim("held").state == "replay"
    assert dedup._keeper is None


def keeper_of(dedup: Deduplicator) -> threading.Thread:
    keeper = dedup._keeper
    assert keeper is not None
    return keeper


def test_the_keeper_starts_again_after_it_went_idle(redis_url: str) -> None:
    """The keeper thread ends when nothing is held; the next claim starts a new one, a daemon
    (it never holds up the interpreter's exit), and its lease is renewed again."""
    store = RedisStore(redis_url)
    dedup = Deduplicator(store, lease=0.3, wait=0, write_behind=0)
    claim = dedup.claim("a")
    first_keeper = keeper_of(dedup)
    dedup.complete(claim, "A")
    first_keeper.join(timeout=2)  # nothing held or pending: it ends
    assert not first_keeper.is_alive()
    held = dedup.claim("b")
    keeper = keeper_of(dedup)
    assert (keeper.is_alive(), keeper.name, keeper.daemon) == (True, "flask-wecom-dedup", True)
    time.sleep(0.7)
    assert Deduplicator(store, wait=0).claim("b") == Claim("waited", "b")
    dedup.release(held)


def test_leases_are_renewed_once_per_third_not_at_every_write_behind_tick(
    redis_url: str,
) -> None:
    dedup = Deduplicator(RedisStore(redis_url, prefix="renew:"), lease=3, write_behind=0.05)
    held = dedup.claim("k")
    time.sleep(0.35)  # seven write-behind ticks, no renewal due (every 1 s)
    assert redis.Redis.from_url(redis_url).pttl("renew:k") < 2850
    dedup.release(held)


def test_the_keeper_sleeps_between_renewals(redis_url: str) -> None:
    """Without write-behind the keeper wakes once per renewal (lease / 3), no busy loop."""
    dedup = Deduplicator(RedisStore(redis_url), lease=3, wait=0, write_behind=0)
    held = dedup.claim("k")
    cpu = time.process_time()
    time.sleep(0.3)
    assert time.process_time() - cpu < 0.1
    dedup.release(held)


def test_the_defaults() -> None:
    """Pinned: a retry waits under WeCom's 5 seconds, replies outlive its retries."""
    dedup = Deduplicator()
    defaults = (dedup.ttl, dedup.lease, dedup.wait, dedup.poll, dedup.write_behind)
    assert defaults == (600.0, 3.0, 4.0, 0.05, 0.0)
    assert dedup.wait < 5 and dedup.lease < 5


def test_after_a_fork_the_parents_work_is_not_the_childs(redis_url: str) -> None:
    """What the at-fork hook runs in a child, run here: the claims and pending replies the
    parent had are dropped (the parent finishes them); new ones work as before."""
    dedup = Deduplicator(RedisStore(redis_url), write_behind=60)
    dedup.complete(dedup.claim("pending"), "P")
    dedup.claim("held")
    dedup_module._forget_the_parents_work()
    assert (dedup._held, dedup._pending, dedup._waiting, dedup._keeper) == ({}, [], set(), None)
    dedup.complete(dedup.claim("new"), "N")
    dedup.flush()
    other = Deduplicator(RedisStore(redis_url), wait=0)
    assert [other.claim(k).state for k in ("pending", "held")] == ["waited", "waited"]
    assert other.claim("new").reply == "N"
