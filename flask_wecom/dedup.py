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
  seconds, then answers with an empty 200. A retry that finds the lease expired
  (the worker died mid-handler) claims the key and runs the handler again, so no
  callback is lost.

Keys: a message is identified by its ``MsgId`` (``msgid`` for AI bots); an event,
which has none, by the SHA-256 of its complete decrypted plaintext. A retry resends
the identical plaintext, while two different events differ somewhere; keying on
``FromUserName + CreateTime``, as old docs suggest, merges distinct events sent in
the same second (WxJava issues 1745, 3088, 3311, 3445). Keys are scoped per endpoint.

If the store fails (Redis down), the callback is handled without dedup and an
error is logged at most once a minute: never a 500, never a lost callback.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from .errors import StoreError
from .messages import Message
from .stores import MemoryStore, Store

__all__ = ["Claim", "Deduplicator", "dedup_key"]

logger = logging.getLogger("flask_wecom")

_PENDING = b"P"
_DONE = b"D"


def dedup_key(endpoint: str, message: Message, plaintext: bytes) -> str:
    """The store key of a callback: its MsgId/msgid, else a hash of the whole plaintext."""
    if message.msg_id is not None and message.msg_id != "":
        identity = f"id:{message.msg_id}"
    else:
        identity = "sha256:" + hashlib.sha256(plaintext).hexdigest()
    return f"dedup:{endpoint}:{identity}"


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
    """

    def __init__(
        self,
        store: Store | None = None,
        *,
        ttl: float = 600.0,
        lease: float = 3.0,
        wait: float = 4.0,
        poll: float = 0.05,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        for name, value in (("ttl", ttl), ("lease", lease), ("poll", poll)):
            if value <= 0:
                raise ValueError(f"{name} must be a positive number of seconds")
        if wait < 0:
            raise ValueError("wait must be zero or more seconds")
        self.store: Store = store if store is not None else MemoryStore()
        self.ttl, self.lease, self.wait, self.poll = ttl, lease, wait, poll
        self._clock, self._sleep = clock, sleep
        self._held: dict[str, bytes] = {}
        self._lock = threading.Lock()
        self._renewer: threading.Thread | None = None
        self._last_store_error = -float("inf")

    # -- the three steps ----------------------------------------------------------------

    def claim(self, key: str) -> Claim:
        """Claim ``key`` for a first arrival, or find its reply, or wait for it."""
        token = _PENDING + secrets.token_hex(8).encode()
        deadline = self._clock() + self.wait
        try:
            while True:
                if self.store.add(key, token, self.lease):
                    self._hold(key, token)
                    return Claim("first", key, token)
                value = self.store.get(key)
                if value is not None and value.startswith(_DONE):
                    return _replay(key, value)
                if value is None:
                    continue  # the lease just expired or the reply was evicted: claim again
                if self._clock() >= deadline:
                    return Claim("waited", key)
                self._sleep(self.poll)
        except StoreError as exc:
            self._store_failed(exc)
            return Claim("bypass", key)

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
        self._unhold(claim.key)
        try:
            if not self.store.compare_and_set(claim.key, claim.token, value, self.ttl):
                logger.warning("dedup lease for %s was lost before the handler finished", claim.key)
        except StoreError as exc:
            self._store_failed(exc)

    # -- lease renewal ------------------------------------------------------------------

    def _hold(self, key: str, token: bytes) -> None:
        with self._lock:
            self._held[key] = token
            if self._renewer is None:
                self._renewer = threading.Thread(
                    target=self._renew_while_held, name="flask-wecom-lease", daemon=True
                )
                self._renewer.start()

    def _unhold(self, key: str) -> None:
        with self._lock:
            self._held.pop(key, None)

    def _renew_while_held(self) -> None:
        """Renew every held lease each ``lease / 3`` seconds; exit when none is held."""
        while True:
            time.sleep(self.lease / 3)
            with self._lock:
                if not self._held:
                    self._renewer = None  # _hold starts a new thread for the next claim
                    return
                held = list(self._held.items())
            for key, token in held:
                try:
                    self.store.compare_and_set(key, token, token, self.lease)
                except StoreError as exc:
                    self._store_failed(exc)

    def _store_failed(self, exc: StoreError) -> None:
        now = time.monotonic()
        if now - self._last_store_error >= 60:
            self._last_store_error = now
            logger.error("dedup store failed (%s); handling callbacks without dedup", exc)
