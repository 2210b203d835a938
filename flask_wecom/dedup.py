"""Each WeCom callback handled once; every retry answered with the same reply.

WeCom waits 5 seconds for an answer, then sends the callback again, three times
in all. :class:`Deduplicator` makes those retries harmless:

* The first arrival **claims** the callback's key in a :class:`~flask_wecom.stores.Store`
  (an atomic set-if-absent) *before* the handler runs, with a short lease that a
  background thread keeps renewing while the handler works.
* When the handler finishes, its reply is stored, **encrypted** (the reply's
  ``Encrypt`` value, which does not depend on the nonce or timestamp), for
  ``ttl`` seconds; the plaintext never rests in the store.
* A retry that finds the reply gets it back, signed for its own nonce and
  timestamp. A retry that finds the handler still running waits up to ``wait``
  seconds, then answers with an empty 200; only one request per key waits (in the
  process, and across processes through the store), any other is answered empty at
  once, so replays cannot pile up on request threads. A retry that finds the lease expired
  (the worker died mid-handler) claims the key and runs the handler again, so no
  callback is lost.

Keys: a message is identified by its ``MsgId`` (``msgid`` for AI bots); an event,
which has none, by its complete decrypted plaintext. Either identity is stored and
logged only as an HMAC keyed by a secret derived from the EncodingAESKey
(:meth:`~flask_wecom.crypto.WeComCrypto.derive_key`), never as a plain hash, which
could be matched against guessed plaintexts (user, event, time). A retry resends
the identical plaintext, while two different events differ somewhere; keying on
``FromUserName + CreateTime``, as old docs suggest, merges distinct events sent in
the same second (WxJava issues 1745, 3088, 3311, 3445). Keys are scoped per endpoint.

If the store fails (Redis down), the callback is handled without dedup and an
error is logged at most once a minute: never a 500, never a lost callback.

With a shared store (Redis), finished replies are **written behind**: gathered for up to
``write_behind`` seconds (50 ms by default) and written together in one round trip, which
halves the store round trips per callback. Until then a retry finds the claim and waits for
it; if the worker dies first, the claim's lease runs out and a retry runs the handler again,
as for a worker that died mid-handler. Pending replies are written at interpreter exit and
by :meth:`Deduplicator.flush`.
"""

from __future__ import annotations

import atexit
import functools
import hmac
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Literal

from .errors import StoreError
from .ids import unique_id
from .messages import Message
from .stores import Change, MemoryStore, Store

__all__ = ["Claim", "Deduplicator", "dedup_key"]

logger = logging.getLogger("flask_wecom")

_PENDING = b"P"
_DONE = b"D"


def dedup_key(endpoint: str, message: Message, plaintext: bytes, secret: bytes) -> str:
    """The store key of a callback: an HMAC of its MsgId/msgid, else of the whole plaintext.

    :param secret: the endpoint's dedup secret (``crypto.derive_key(b"dedup")``).
    """
    if message.msg_id is not None and message.msg_id != "":
        identity = b"id:" + str(message.msg_id).encode("utf-8")
    else:
        identity = b"doc:" + plaintext
    keyed = _keyed_hash(secret).copy()
    keyed.update(identity)
    return f"dedup:{endpoint}:{keyed.hexdigest()[:32]}"


@functools.lru_cache(maxsize=256)
def _keyed_hash(secret: bytes) -> hmac.HMAC:
    """HMAC-SHA256 keyed with ``secret``, to be copied per key: cheaper than a new HMAC, and
    unlike :func:`hmac.digest` it does not release the GIL to hash a few bytes."""
    return hmac.new(secret, digestmod="sha256")


@dataclass(frozen=True)
class Claim:
    """The answer to :meth:`Deduplicator.claim`.

    ``state`` is ``"first"`` (run the handler, then :meth:`~Deduplicator.complete`
    or :meth:`~Deduplicator.release`), ``"replay"`` (answer ``reply``),
    ``"waited"`` (the first is still running: answer empty) or ``"bypass"`` (the
    store failed: run the handler without dedup).
    """

    state: Literal["first", "replay", "waited", "bypass"]
    key: str
    #: The lease token of a first arrival.
    token: bytes = b""
    #: For a replay: the stored encrypted reply ("" for an empty one) ...
    reply: str = ""
    #: ... and the index of the credential set that encrypted it.
    credential: int = 0


def _replay(key: str, value: bytes) -> Claim:
    credential, _, reply = value[len(_DONE) :].partition(b":")
    if not credential.isdigit() or not reply.isascii():
        raise StoreError("the stored reply is malformed")
    return Claim("replay", key, reply=reply.decode("ascii"), credential=int(credential))


class Deduplicator:
    """Claims, leases and replays callbacks in a store.

    :param store: where claims and replies live; a per-process :class:`MemoryStore`
        by default (use a :class:`~flask_wecom.stores.RedisStore` for several workers).
    :param ttl: how long a finished callback's reply is kept, seconds; longer than
        WeCom's retry window (about 15 s).
    :param lease: how long a claim survives without renewal, seconds. Renewed every
        ``lease / 3`` while the handler runs, so only a dead worker's claim expires.
    :param wait: how long a retry waits for a running first arrival, seconds.
    :param poll: how often a waiting retry looks again, seconds.
    :param write_behind: how long a finished reply may wait to be written together with
        others, seconds; 0 writes each at once. Defaults to 0 for a :class:`MemoryStore`
        (nothing to save) and 0.05 for any other store.
    :param clock: seconds on a clock that never goes back, for a retry's wait and the rate
        limit of the store-failure log; tests inject a fake one.
    :param sleep: how :meth:`claim` pauses between looks; tests inject a fake one.
    """

    def __init__(
        self,
        store: Store | None = None,
        *,
        ttl: float = 600.0,
        lease: float = 3.0,
        wait: float = 4.0,
        poll: float = 0.05,
        write_behind: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        for name, value in (("ttl", ttl), ("lease", lease), ("poll", poll)):
            if value <= 0:
                raise ValueError(f"{name} must be a positive number of seconds")
        for name, value in (("wait", wait), ("write_behind", write_behind or 0)):
            if value < 0:
                raise ValueError(f"{name} must be zero or more seconds")
        self.store: Store = store if store is not None else MemoryStore()
        self.ttl, self.lease, self.wait, self.poll = ttl, lease, wait, poll
        # A memory store dies with its process, so nobody can outlive a claim in it: its
        # claims need no lease renewal (and no keeper thread); they last until settled.
        self._renews = not isinstance(self.store, MemoryStore)
        if write_behind is None:
            write_behind = 0.0 if isinstance(self.store, MemoryStore) else 0.05
        self.write_behind = write_behind
        self._clock, self._sleep = clock, sleep
        self._held: dict[str, bytes] = {}
        self._waiting: set[str] = set()
        self._pending: list[Change] = []
        self._lock = threading.Lock()
        self._keeper: threading.Thread | None = None
        self._last_store_error = -float("inf")
        _LIVING.add(self)

    # -- the three steps ----------------------------------------------------------------

    def claim(self, key: str) -> Claim:
        """Claim ``key`` for a first arrival, or find its reply, or wait for it."""
        return self.drive(self.claim_steps(key))

    def drive(self, steps: Generator[float, None, Claim]) -> Claim:
        """Run :meth:`claim_steps` to its end, sleeping as it asks."""
        while True:
            try:
                self._sleep(next(steps))
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]

    def claim_steps(self, key: str) -> Generator[float, None, Claim]:
        """:meth:`claim` as a generator: it yields the seconds to wait before looking again
        and returns the claim, so an event loop can wait with ``await asyncio.sleep``."""
        token = _PENDING + unique_id().encode()
        deadline = self._clock() + self.wait
        lease = self.lease if self._renews else self.ttl
        waiting = False
        try:
            while True:
                if self.store.add(key, token, lease):
                    if self._renews:
                        self._hold(key, token)
                    return Claim("first", key, token)
                value = self.store.get(key)
                if value is not None and value.startswith(_DONE):
                    return _replay(key, value)
                if value is None:
                    continue  # the lease just expired or the reply was evicted: claim again
                if not waiting:
                    waiting = self._start_waiting(key)
                    if not waiting:
                        return Claim("waited", key)  # another request waits already
                if self._clock() >= deadline:
                    return Claim("waited", key)
                yield self.poll
        except StoreError as exc:
            self._store_failed(exc)
            return Claim("bypass", key)
        finally:
            if waiting:
                self._stop_waiting(key)

    def _start_waiting(self, key: str) -> bool:
        """Become the one request waiting for ``key``'s first arrival (False: one waits)."""
        with self._lock:
            if key in self._waiting:
                return False
            self._waiting.add(key)
        try:
            if self.store.add(key + ":wait", b"1", max(self.wait, self.poll)):
                return True
        except StoreError:
            pass
        with self._lock:
            self._waiting.discard(key)
        return False

    def _stop_waiting(self, key: str) -> None:
        with self._lock:
            self._waiting.discard(key)
        try:
            self.store.delete(key + ":wait")
        except StoreError as exc:
            self._store_failed(exc)

    def complete(self, claim: Claim, encrypted_reply: str, credential: int = 0) -> None:
        """Store the encrypted reply ("" for none) of a first arrival and end its lease."""
        value = _DONE + f"{credential}:{encrypted_reply}".encode("ascii")
        self._finish(claim, value)

    def release(self, claim: Claim) -> None:
        """Give up a first arrival's claim (the app failed), so a retry runs it again."""
        self._finish(claim, None)

    def _finish(self, claim: Claim, value: bytes | None) -> None:
        if claim.state != "first":
            return
        change = (claim.key, claim.token, value, self.ttl)
        with self._lock:
            self._held.pop(claim.key, None)
            if self.write_behind:
                self._pending.append(change)
                self._keep()
                return
        self._write([change])

    def flush(self) -> None:
        """Write every finished reply still waiting to be written behind, now."""
        with self._lock:
            pending, self._pending = self._pending, []
        self._write(pending)

    def _write(self, changes: list[Change]) -> None:
        """Store finished replies (or release claims); a lost lease is logged, never raised."""
        if not changes:
            return
        try:
            written = self.store.compare_and_set_many(changes)
        except StoreError as exc:
            self._store_failed(exc)
            return
        for (key, *_), done in zip(changes, written, strict=True):
            if not done:
                logger.warning("dedup lease for %s was lost before the handler finished", key)

    # -- the keeper thread: lease renewal and written-behind replies ------------------------

    def _hold(self, key: str, token: bytes) -> None:
        with self._lock:
            self._held[key] = token
            self._keep()

    def _keep(self) -> None:
        """Start the keeper thread unless it runs. Lock held."""
        if self._keeper is None:
            self._keeper = threading.Thread(
                target=self._keep_while_needed, name="flask-wecom-dedup", daemon=True
            )
            self._keeper.start()

    def _keep_while_needed(self) -> None:
        """Write pending replies every ``write_behind`` seconds and renew every held lease each
        ``lease / 3``; exit when nothing is held or pending."""
        renew_every = self.lease / 3
        tick = min(renew_every, self.write_behind) if self.write_behind else renew_every
        renew_at = time.monotonic() + renew_every
        while True:
            time.sleep(tick)
            with self._lock:
                if not self._held and not self._pending:
                    self._keeper = None  # the next claim or reply starts a new thread
                    return
                pending, self._pending = self._pending, []
                due = time.monotonic() >= renew_at
                held = list(self._held.items()) if due else []
            self._write(pending)
            if due:
                renew_at = time.monotonic() + renew_every
                try:
                    self.store.compare_and_set_many(
                        [(key, token, token, self.lease) for key, token in held]
                    )
                except StoreError as exc:
                    self._store_failed(exc)

    def _store_failed(self, exc: StoreError) -> None:
        now = self._clock()
        if now - self._last_store_error >= 60:
            self._last_store_error = now
            logger.error("dedup store failed (%s); handling callbacks without dedup", exc)


#: Every Deduplicator alive, so replies still pending at exit are written.
_LIVING: weakref.WeakSet[Deduplicator] = weakref.WeakSet()


@atexit.register
def _flush_at_exit() -> None:
    for dedup in list(_LIVING):
        dedup.flush()


def _forget_the_parents_work() -> None:
    """In a forked child (a gunicorn worker of a preloaded app): the claims and pending replies
    are the parent's to finish, and its keeper thread did not come along."""
    for dedup in list(_LIVING):
        dedup._held, dedup._pending, dedup._waiting = {}, [], set()
        dedup._lock, dedup._keeper = threading.Lock(), None


os.register_at_fork(after_in_child=_forget_the_parents_work)
