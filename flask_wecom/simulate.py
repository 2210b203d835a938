"""The simulator engine behind ``flask-wecom simulate``: send callbacks as WeCom would.

WeCom sends a callback, waits up to 5 seconds for a ``200``, and sends the same plaintext
again (fresh timestamp and nonce) up to twice more. :class:`Simulator` does the same over
HTTP with requests, and judges each answer: the echo for a URL verification, a reply that
verifies and decrypts for a callback. :func:`summarize` counts the outcomes.

Usage::

    simulator = Simulator("http://127.0.0.1:5000/wecom", signer, retries=2, timeout=5)
    trips = [simulator.round_trip(step) for step in steps(signer, texts=["hi"], ...)]
    print(summarize(trips))

The command line (:mod:`flask_wecom.cli`) only parses options and prints; whatever a
server answers is data to judge, never a reason to crash.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from .errors import ParseError, WeComError
from .replies import parse_reply
from .testing import CallbackSigner, SignedRequest

if TYPE_CHECKING:
    import requests

__all__ = [
    "Attempt",
    "Outcome",
    "RoundTrip",
    "Simulator",
    "Step",
    "answer_text",
    "describe_failure",
    "percentile",
    "steps",
    "summarize",
]

#: How a round trip ended.
Outcome = Literal["ok", "refused", "no answer", "bad reply"]


@dataclass(frozen=True)
class Step:
    """One kind of callback to send; ``build`` makes a fresh request each round."""

    label: str
    build: Callable[[], SignedRequest]


@dataclass(frozen=True)
class Attempt:
    """One HTTP send: the status (None: no answer) and how long it took."""

    status: int | None
    ms: float
    error: str | None = None


@dataclass
class RoundTrip:
    """One callback until it was answered with 200 or the sends ran out."""

    label: str
    method: str
    outcome: Outcome = "no answer"
    attempts: list[Attempt] = field(default_factory=list)
    #: The decrypted reply plaintext (the echo for a URL verification), or None.
    reply: str | None = None
    #: A readable summary: the parsed reply, or why the round trip failed.
    detail: str = ""

    @property
    def status(self) -> int | None:
        """The status of the last send, or None when it got no answer."""
        return self.attempts[-1].status if self.attempts else None


def describe_failure(error: WeComError) -> str:
    """What to check for a crypto or parse error, in words (its hint, else its message)."""
    return error.hint or str(error)


class Simulator:
    """Sends callbacks to one URL as WeCom would, resending when no 200 arrives in time.

    :param url: the callback URL.
    :param signer: signs and encrypts callbacks, checks and decrypts replies.
    :param retries: resends after the first send (WeCom: 2).
    :param timeout: seconds to wait for an answer before resending (WeCom: 5).
    :raises ImportError: requests is not installed (the ``client`` extra).
    """

    def __init__(self, url: str, signer: CallbackSigner, *, retries: int, timeout: float) -> None:
        import requests

        self.url = url
        self.signer = signer
        self.retries = retries
        self.timeout = timeout
        self.session: requests.Session = requests.Session()

    def close(self) -> None:
        """Close the HTTP connections."""
        self.session.close()

    def round_trip(self, step: Step) -> RoundTrip:
        """Send one callback, then resend the same plaintext while no 200 arrives."""
        request = step.build()
        trip = RoundTrip(step.label, request.method)
        answer: bytes | None = None
        for attempt in range(1 + self.retries):
            if attempt:
                request = self.signer.resend(request)
            answer = self._send(request, trip)
            if answer is not None and trip.status == 200:  # WeCom resends on anything else
                self._judge(request, answer, trip)
                return trip
        if trip.status is None:
            trip.outcome, trip.detail = "no answer", trip.attempts[-1].error or ""
        else:
            trip.outcome, trip.detail = "refused", f"HTTP {trip.status} {answer_text(answer)}"
        return trip

    def _send(self, request: SignedRequest, trip: RoundTrip) -> bytes | None:
        import requests

        started = time.perf_counter()
        try:
            response = self.session.request(
                request.method,
                request.url(self.url),
                data=request.body,
                headers={"Content-Type": request.content_type} if request.content_type else {},
                timeout=self.timeout,
                allow_redirects=False,
            )
        except requests.Timeout:
            error = f"no answer within {self.timeout:g} s"
        except requests.RequestException as exc:
            error = f"connection failed: {type(exc).__name__}"
        else:
            elapsed = (time.perf_counter() - started) * 1000
            trip.attempts.append(Attempt(response.status_code, round(elapsed, 2)))
            return response.content
        elapsed = (time.perf_counter() - started) * 1000
        trip.attempts.append(Attempt(None, round(elapsed, 2), error))
        return None

    def _judge(self, request: SignedRequest, body: bytes, trip: RoundTrip) -> None:
        """Check a 200 answer: the echo for a verification, else a decryptable reply."""
        if request.method == "GET":
            trip.reply = body.decode("utf-8", "replace")
            if body == request.plaintext:
                trip.outcome, trip.detail = "ok", "echo matches"
            else:
                trip.outcome, trip.detail = "bad reply", "answered 200 without the echo"
            return
        try:
            plaintext = self.signer.decrypt_reply(body, request)
        except WeComError as exc:
            trip.outcome, trip.detail = "bad reply", describe_failure(exc)
            return
        trip.outcome = "ok"
        if plaintext is None:
            trip.detail = "(empty reply)"
            return
        trip.reply = plaintext.decode("utf-8", "replace")
        try:
            trip.detail = repr(parse_reply(plaintext))
        except ParseError:
            trip.detail = trip.reply


def answer_text(body: bytes | None, limit: int = 60) -> str:
    """The start of a refusal's body, on one line."""
    text = (body or b"").decode("utf-8", "replace").strip().replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def steps(
    signer: CallbackSigner,
    *,
    texts: Sequence[str] = (),
    clicks: Sequence[str] = (),
    subscribe: bool = False,
    files: Sequence[Path] = (),
    from_user: str = "zhangsan",
    aibot: bool = False,
) -> list[Step]:
    """The callbacks of one round, in a fixed order: texts, clicks, subscribe, files.

    One text ``hello`` when nothing is given.
    """
    send_text = signer.aibot_text if aibot else signer.text
    plan = [
        Step(f"text {text!r}", partial(send_text, text, from_user=from_user))
        for text in texts or ([] if clicks or subscribe or files else ["hello"])
    ]
    plan += [
        Step(f"click {key}", partial(signer.click, key, from_user=from_user)) for key in clicks
    ]
    if subscribe:
        plan.append(Step("subscribe", partial(signer.subscribe, from_user=from_user)))
    plan += [
        Step(f"file {path.name}", partial(signer.callback, path.read_bytes())) for path in files
    ]
    return plan


def percentile(values: Sequence[float], percent: float) -> float | None:
    """The nearest-rank percentile of ``values`` (``percent`` 99 for p99), or None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(percent / 100 * len(ordered)) - 1)]


def summarize(trips: Sequence[RoundTrip]) -> dict[str, Any]:
    """Counts per outcome, and p50/p99 milliseconds over every send that got an answer."""
    answered = [a.ms for t in trips for a in t.attempts if a.status is not None]
    p50, p99 = percentile(answered, 50), percentile(answered, 99)
    return {
        "callbacks": len(trips),
        "sent": sum(len(t.attempts) for t in trips),
        "ok": sum(t.outcome == "ok" for t in trips),
        "refused": sum(t.outcome == "refused" for t in trips),
        "no_answer": sum(t.outcome == "no answer" for t in trips),
        "bad_reply": sum(t.outcome == "bad reply" for t in trips),
        "p50_ms": None if p50 is None else round(p50, 1),
        "p99_ms": None if p99 is None else round(p99, 1),
    }
