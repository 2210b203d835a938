"""Soak: the example app under gunicorn at full speed with valid callbacks, retries and attacks.

The load generator (keep-alive sockets from several processes, as in ``e2e_bench.py``)
sends a mix:

* ``valid``: text messages, menu clicks and subscribe events, each with a fresh MsgId; the
  reply must decrypt, under the request's nonce, to exactly what the example app answers;
* ``retry``: an answered callback sent again with a fresh nonce and timestamp, as WeCom
  does; it must get the same reply (replayed from the dedup store or handled again);
* ``attack``: a forged signature, a stale timestamp, garbage under a valid signature, bad
  padding, a DOCTYPE plaintext, a duplicate query parameter, a 50 MB Content-Length, a PUT;
  each must get its refusal status.

Before the measured requests, ``--warmup`` text messages (each a new dedup key) fill each
worker's in-memory dedup store past its 10,000-entry bound, so the start RSS already includes
a full store. Connections are replaced every ``--reconnect`` requests so that every worker
gets its share. Each phase runs in ``--chunks`` chunks with the workers' RSS read after each,
so a plateau (a full store) is told apart from steady growth (a leak); the worker pids are
compared too, so a restarted worker cannot hide a leak.

Targets: no 5xx, no lost callback (every valid callback and retry answered 200 with the right
reply), every attack refused as expected, RSS growth under 5 MB over the measured requests, and
a flat line: under 1 MB per 100,000 requests in every measured chunk after the first.

``--redis`` starts a redis-server on a free loopback port and gives the app
``WECOM_REDIS_URL``, so the dedup claims, replies and nonces live in Redis. The long soak of
issue 18 (see docs/scale.md)::

    .venv/bin/python bench/soak_bench.py --redis --requests 1000000 --chunks 10

Run: ``.venv/bin/python bench/soak_bench.py --requests 100000`` (or ``scripts/bench.sh soak``).
"""

from __future__ import annotations

import argparse
import itertools
import multiprocessing
import random
import socket
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from multiprocessing.connection import Connection
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.e2e_bench import read_response, render  # noqa: E402
from bench.stats import percentile  # noqa: E402
from flask_wecom.testing import CallbackSigner, SignedRequest  # noqa: E402
from harness.forge import (  # noqa: E402
    CORP_ID,
    ENV,
    KEY,
    TOKEN,
    encrypt_raw,
    frame,
    pad,
    signed_post,
)
from harness.redis_server import RedisServer  # noqa: E402
from harness.web_servers import GunicornServer  # noqa: E402

#: Share of each kind in the measured mix.
MIX = {"valid": 0.6, "retry": 0.2, "attack": 0.2}
#: Target: RSS growth over the measured requests, all workers together.
MAX_GROWTH_KB = 5 * 1024
#: Target: RSS growth per 100,000 requests in each measured chunk after the first.
MAX_SLOPE_KB = 1024


@dataclass(frozen=True)
class Shot:
    """One request to send and what must come back."""

    kind: str
    name: str
    data: bytes
    status: int
    #: For 200s: the request (for its nonce) and the reply content it must decrypt to.
    request: SignedRequest | None = None
    reply: str | None = None


def valid(signer: CallbackSigner, rng: random.Random, pick: int | None = None) -> Shot:
    """A callback the example app answers, and the exact reply it gives.

    ``pick`` 0 is a text message (always a new dedup key: a fresh MsgId); 1 a menu click and
    2 a subscribe event, keyed on their plaintext: each from a user of its own, since two equal
    events sent at once are a retry, one of which may be answered empty (with a shared dedup
    store, also across connections and workers).
    """
    pick = rng.randrange(3) if pick is None else pick
    if pick == 0:
        content = f"soak {rng.getrandbits(64):x}"
        request, reply = signer.text(content), f"echo: {content}"
    elif pick == 1:
        choice = rng.choice(["PIZZA", "SUSHI", "NOODLES"])
        request = signer.click(f"MENU_VOTE_{choice}", from_user=f"u{rng.getrandbits(64):x}")
        reply = f"Thanks, your vote for {choice.lower()} is counted."
    else:
        user = f"u{rng.getrandbits(64):x}"
        request, reply = signer.subscribe(from_user=user), f"Welcome, {user}! Type help to start."
    name = ("text", "click", "subscribe")[pick]
    return Shot("valid", name, render(request), 200, request, reply)


def with_content_length(data: bytes, value: int) -> bytes:
    head, _, body = data.partition(b"\r\n\r\n")
    lines = [line for line in head.split(b"\r\n") if not line.startswith(b"Content-Length:")]
    return b"\r\n".join([*lines, b"Content-Length: %d" % value]) + b"\r\n\r\n" + body


def bad_padding() -> bytes:
    buffer = pad(frame(b"<xml/>", CORP_ID))
    return buffer[:-1] + bytes((buffer[-1] + 40,))


#: Each attack: its name, how to build the request bytes, the status it must get.
ATTACKS: list[tuple[str, Callable[[CallbackSigner], bytes], int]] = [
    ("forged-signature", lambda s: render(s.text("x", signature="0" * 40)), 403),
    ("stale-timestamp", lambda s: render(s.text("x", timestamp=int(time.time()) - 3600)), 403),
    ("garbage-ciphertext", lambda s: render(signed_post("QUJDREVGR0hJSktMTU5PUA==")), 400),
    ("bad-padding", lambda s: render(signed_post(encrypt_raw(bad_padding()))), 400),
    ("doctype", lambda s: render(s.callback(b"<!DOCTYPE x><xml/>")), 400),
    (
        "duplicate-parameter",
        lambda s: render(replace((r := s.text("x")), query_string=r.query_string + "&nonce=1")),
        400,
    ),
    (
        "huge-content-length",
        lambda s: with_content_length(render(s.text("x")), 50 * 1024 * 1024),
        413,
    ),
    ("put", lambda s: render(s.text("x")).replace(b"POST ", b"PUT ", 1), 405),
]


@dataclass
class Tally:
    """What one load process saw."""

    latencies: dict[str, list[float]] = field(default_factory=dict)
    sent: Counter[str] = field(default_factory=Counter)
    #: (kind, what went wrong) -> count: "status 500", "wrong reply", "ConnectionError" ...
    errors: Counter[tuple[str, str]] = field(default_factory=Counter)

    def add(self, other: Tally) -> None:
        for kind, values in other.latencies.items():
            self.latencies.setdefault(kind, []).extend(values)
        self.sent.update(other.sent)
        self.errors.update(other.errors)


def soak_process(
    port: int,
    requests: int,
    args: argparse.Namespace,
    mix: dict[str, float],
    seed: int,
    out: Connection,
) -> None:
    """Send ``requests`` shots (or stop after ``args.seconds``) from ``args.threads`` connections.

    Each connection is replaced after ``args.reconnect`` requests, so the load spreads over
    every gunicorn worker (a keep-alive connection stays with the worker that accepted it).
    """
    tally = Tally()
    lock = threading.Lock()
    remaining = [requests]
    deadline = time.monotonic() + args.seconds

    def take() -> bool:
        with lock:
            remaining[0] -= 1
            return remaining[0] >= 0 and time.monotonic() < deadline

    def connection(number: int) -> None:
        rng = random.Random(seed * 1000 + number)
        signer = CallbackSigner(TOKEN, KEY, CORP_ID)
        answered: list[Shot] = []  # recent valid shots, to retry
        latencies: dict[str, list[float]] = {kind: [] for kind in mix}
        sent: Counter[str] = Counter()
        errors: Counter[tuple[str, str]] = Counter()
        sock: socket.socket | None = None
        buffer = bytearray()
        try:
            while take():
                kind = rng.choices(list(mix), weights=list(mix.values()))[0]
                shot = next_shot(kind, signer, rng, answered)
                sent[shot.kind] += 1
                try:
                    if sock is None:
                        sock = socket.create_connection(("127.0.0.1", port), timeout=30)
                        buffer = bytearray()
                    started = time.perf_counter()
                    sock.sendall(shot.data)
                    status, body = read_response(sock, buffer)
                    latencies[shot.kind].append(time.perf_counter() - started)
                except OSError as exc:
                    errors[shot.kind, type(exc).__name__] += 1
                    close(sock)
                    sock = None
                    continue
                problem = judge(shot, status, body, signer)
                if problem:
                    errors[shot.kind, problem] += 1
                elif shot.kind == "valid":
                    answered.append(shot)
                    del answered[:-50]
                # After a 413 the rest of the announced body never comes: start afresh.
                if shot.status == 413 or sent.total() % args.reconnect == 0:
                    close(sock)
                    sock = None
        except Exception as exc:  # a load-generator bug must not pass for a clean run
            errors["client", f"{type(exc).__name__}: {exc}"] += 1
        finally:
            close(sock)
            with lock:
                tally.add(Tally(latencies, sent, errors))

    workers = [threading.Thread(target=connection, args=(n,)) for n in range(args.threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    out.send(tally)
    out.close()


def next_shot(kind: str, signer: CallbackSigner, rng: random.Random, answered: list[Shot]) -> Shot:
    if kind == "retry" and answered:
        original = rng.choice(answered)
        assert original.request is not None
        again = signer.resend(original.request)
        return Shot("retry", original.name, render(again), 200, again, original.reply)
    if kind == "attack":
        name, build, status = rng.choice(ATTACKS)
        return Shot("attack", name, build(signer), status)
    if kind == "warm":
        return replace(valid(signer, rng, 0), kind="warm")
    return valid(signer, rng)


def judge(shot: Shot, status: int, body: bytes, signer: CallbackSigner) -> str | None:
    """What is wrong with the answer, or None."""
    if status != shot.status:
        return f"{shot.name}: status {status}"
    if shot.request is None:
        return None
    try:
        reply = signer.open_reply(body, shot.request)
    except Exception as exc:  # any failure to open the reply is a wrong reply
        return f"{shot.name}: unreadable reply ({type(exc).__name__})"
    if getattr(reply, "content", None) != shot.reply:
        return f"{shot.name}: wrong reply"
    return None


def close(sock: socket.socket | None) -> None:
    if sock is not None:
        sock.close()


def run(
    port: int, requests: int, args: argparse.Namespace, mix: dict[str, float]
) -> tuple[Tally, float]:
    """Spread ``requests`` over the load processes; return the merged tally and wall time."""
    context = multiprocessing.get_context("fork")
    jobs = []
    for number in range(args.processes):
        receive, send = context.Pipe(duplex=False)
        share = requests // args.processes + (number < requests % args.processes)
        process = context.Process(
            target=soak_process,
            args=(port, share, args, mix, args.seed + number, send),
        )
        jobs.append((process, receive))
    started = time.perf_counter()
    for process, _ in jobs:
        process.start()
    merged = Tally()
    for process, receive in jobs:
        merged.add(receive.recv())
        process.join()
    return merged, time.perf_counter() - started


@dataclass
class Phase:
    """One phase (warm-up or measured) run in chunks, with the workers' RSS after each."""

    name: str
    tally: Tally = field(default_factory=Tally)
    seconds: float = 0.0
    #: The workers' RSS in KiB before the first chunk and after each chunk.
    rss: list[dict[int, int]] = field(default_factory=list)

    def growth_kb(self) -> int:
        return sum(self.rss[-1].values()) - sum(self.rss[0].values())

    def slopes_kb(self) -> list[float]:
        """RSS growth per 100,000 requests in each chunk after the first, all workers."""
        per_chunk = sum(self.tally.sent.values()) / max(1, len(self.rss) - 1)
        totals = [sum(reading.values()) for reading in self.rss]
        return [(b - a) * 100_000 / per_chunk for a, b in itertools.pairwise(totals[1:])]


def phase(
    server: GunicornServer,
    name: str,
    requests: int,
    args: argparse.Namespace,
    mix: dict[str, float],
) -> Phase:
    """Send ``requests`` in ``args.chunks`` chunks, reading the workers' RSS around each."""
    result = Phase(name, rss=[server.rss_kb()])
    for chunk in range(args.chunks):
        share = requests // args.chunks + (chunk < requests % args.chunks)
        tally, seconds = run(server.port, share, args, mix)
        result.tally.add(tally)
        result.seconds += seconds
        result.rss.append(server.rss_kb())
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=100_000, help="measured requests")
    parser.add_argument("--warmup", type=int, default=30_000, help="text messages first")
    parser.add_argument("--chunks", type=int, default=5, help="RSS readings per phase")
    parser.add_argument("--seconds", type=float, default=900.0, help="stop a chunk after this")
    parser.add_argument("--processes", type=int, default=2, help="load generator processes")
    parser.add_argument("--threads", type=int, default=4, help="connections per process")
    parser.add_argument("--reconnect", type=int, default=20, help="requests per connection")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--redis", action="store_true", help="dedup and nonces in a redis-server")
    args = parser.parse_args(argv)

    with ExitStack() as stack:
        env = dict(ENV)
        if args.redis:
            redis = RedisServer(Path(stack.enter_context(tempfile.TemporaryDirectory())))
            redis.start()
            stack.callback(redis.stop)
            env["WECOM_REDIS_URL"] = redis.url
        server = stack.enter_context(
            GunicornServer("example_app.app:app", env=env, workers=args.workers)
        )
        pids = sorted(server.worker_pids())
        warm = phase(server, "warm-up", args.warmup, args, {"warm": 1.0})
        measured = phase(server, "measured", args.requests, args, MIX)
        same_workers = sorted(server.worker_pids()) == pids
        log = server.log()
    report(warm, measured, same_workers, log)
    errors = warm.tally.errors + measured.tally.errors
    flat = all(slope < MAX_SLOPE_KB for slope in measured.slopes_kb())
    ok = not errors and same_workers and measured.growth_kb() < MAX_GROWTH_KB and flat
    return 0 if ok else 1


def report(warm: Phase, measured: Phase, same_workers: bool, log: str) -> None:
    for part in (warm, measured):
        total = sum(part.tally.sent.values())
        print(
            f"{part.name}: {total} requests in {part.seconds:.0f} s ({total / part.seconds:.0f}/s)"
        )
    tally = measured.tally
    for kind in MIX:
        values = tally.latencies.get(kind, [])
        print(
            f"  {kind:<7}{tally.sent[kind]:>8} sent   p50 {percentile(values, 0.5) * 1000:6.2f} ms"
            f"   p99 {percentile(values, 0.99) * 1000:6.2f} ms"
        )
    every = [v for values in tally.latencies.values() for v in values]
    print(
        f"  all    {len(every):>8} answered p50 {percentile(every, 0.5) * 1000:6.2f} ms"
        f"   p99 {percentile(every, 0.99) * 1000:6.2f} ms"
    )
    errors = warm.tally.errors + tally.errors
    fivexx = sum(n for (_, problem), n in errors.items() if "status 5" in problem)
    lost = sum(n for (kind, _), n in errors.items() if kind != "attack")
    print(f"errors: {sum(errors.values())} (5xx: {fivexx}, lost callbacks: {lost})")
    for (kind, problem), count in sorted(errors.items()):
        print(f"  {kind}: {problem}: {count}")
    print(f"tracebacks in the server log: {log.count('Traceback')}")
    print(f"workers unchanged: {same_workers}")
    for part in (warm, measured):
        print(f"RSS (MB) per worker, {part.name}, before and after each chunk:")
        for pid in sorted(part.rss[0]):
            trace = " ".join(f"{reading.get(pid, 0) / 1024:.1f}" for reading in part.rss)
            print(f"  worker {pid}: {trace}")
    growth = measured.growth_kb()
    verdict = "met" if growth < MAX_GROWTH_KB else "MISSED"
    print(
        f"RSS growth over the measured requests, all workers: {growth / 1024:+.2f} MB "
        f"(target < 5 MB: {verdict})"
    )
    slopes = measured.slopes_kb()
    flat = "met" if all(slope < MAX_SLOPE_KB for slope in slopes) else "MISSED"
    print(
        "RSS growth per 100k requests in each chunk after the first, all workers (MB): "
        + " ".join(f"{slope / 1024:+.2f}" for slope in slopes)
        + f" (target < 1 MB: {flat})"
    )


if __name__ == "__main__":
    sys.exit(main())
