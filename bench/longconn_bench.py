"""An echo AI bot over the long connection: flask_wecom against the official Python SDK.

The fake long-connection server (:mod:`flask_wecom.testing_longconn`, TLS on 127.0.0.1,
quota off) pushes ``--messages`` text callbacks, ``--concurrency`` outstanding at a time, to
one client process; each client answers every message with one finished stream frame
holding the text. Measured at the server: messages per second, and the latency from the
push to the reply frame (p50, p99). Also the client process's CPU time per message (from
/proc), which the other load on a shared machine disturbs less than wall-clock figures.

The server process's CPU per message is printed too: the fake server is in the loop for
every client, and a client that sends its replies in bursts costs it less per message.

Clients, each in its own process, in interleaved rounds (best round of each is reported):

* ``flask_wecom``: :class:`~flask_wecom.longconn.LongConnection`, a plain (sync) handler on
  its thread pool, msgid dedup on (in memory);
* ``flask_wecom-async``: the same with an ``async def`` handler;
* ``flask_wecom-redis``: the sync handler with dedup, the owner lease and the journal in a
  real redis-server (what a bot run on several hosts does per message);
* ``sdk``: ``wecom-aibot-python-sdk`` 1.0.2 (PyPI, import name ``aibot``), an async
  ``message.text`` listener calling ``reply_stream(..., finish=True)``; no dedup (it has
  none), its per-frame debug logging silenced. It only dials ``wss://`` with its own
  module-level SSL context (certifi's CAs), so that context is replaced by one trusting the
  benchmark's self-signed certificate; its ``ws_url`` option points it at the fake server.
* ``sdk-thread``: the same, with the text made by a plain function run through
  ``asyncio.to_thread``: what an SDK user must do with blocking code, so the peer of
  flask_wecom's sync handler.

Run: ``.venv/bin/python bench/longconn_bench.py`` (or ``scripts/bench.sh longconn``).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.e2e_bench import percentile, process_cpu_seconds  # noqa: E402
from flask_wecom.testing_longconn import FakeLongConnServer, Sent  # noqa: E402
from harness.redis_server import RedisServer  # noqa: E402

BOT, SECRET = "aibBENCHBOT", "BENCH_LONGCONN_SECRET"
CLIENTS = ("flask_wecom", "flask_wecom-async", "flask_wecom-redis", "sdk", "sdk-thread")


# --------------------------------------------------------------------------- the clients


def run_flask_wecom(url: str, cafile: str, asynchronous: bool, redis_url: str | None) -> None:
    """An echo bot on flask_wecom's long connection, until SIGTERM."""
    from flask_wecom.aibot import BotReceiver
    from flask_wecom.longconn import LongConnection
    from flask_wecom.messages import Message
    from flask_wecom.stores import store_from_url

    bot = BotReceiver()
    if asynchronous:

        @bot.message("text")
        async def echo_async(message: Message) -> str:
            return str(message.content)

    else:

        @bot.message("text")
        def echo(message: Message) -> str:
            return str(message.content)

    context = ssl.create_default_context(cafile=cafile)
    store = store_from_url(redis_url)  # Redis: dedup, lease and journal there
    LongConnection(bot, BOT, SECRET, url=url, ssl_context=context, store=store).run_forever()


class _Quiet:
    """A logger for the SDK that drops debug and info lines (it logs every frame)."""

    def debug(self, message: str, *args: object) -> None:
        """Dropped."""

    info = debug

    def warn(self, message: str, *args: object) -> None:
        """To stderr."""
        print(message, *args, file=sys.stderr)

    error = warn


def run_sdk(url: str, cafile: str, threaded: bool) -> None:
    """An echo bot on the official SDK, until SIGTERM (``threaded``: the text is made by a
    plain function on a thread, as an SDK user must run blocking code)."""
    import aibot.ws
    from aibot import WSClient, WSClientOptions
    from aibot.utils import generate_req_id

    aibot.ws._SSL_CONTEXT = ssl.create_default_context(cafile=cafile)  # type: ignore[attr-defined]

    async def main() -> None:
        client = WSClient(WSClientOptions(bot_id=BOT, secret=SECRET, ws_url=url, logger=_Quiet()))

        def text_of(frame: dict[str, Any]) -> str:
            return str(frame["body"]["text"]["content"])

        @client.on("message.text")  # type: ignore[untyped-decorator]
        async def echo(frame: dict[str, Any]) -> None:
            content = await asyncio.to_thread(text_of, frame) if threaded else text_of(frame)
            await client.reply_stream(frame, generate_req_id("stream"), content, finish=True)

        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await client.connect()
        await stop.wait()
        client.disconnect()

    asyncio.run(main())


# --------------------------------------------------------------------------- the driver


@dataclass
class Round:
    """One client's round."""

    client: str
    messages: int
    seconds: float
    latencies: list[float]
    cpu_seconds: float
    server_cpu_seconds: float

    @property
    def rate(self) -> float:
        return self.messages / self.seconds

    def line(self) -> str:
        p50, p99 = (percentile(self.latencies, f) * 1e3 for f in (0.5, 0.99))
        return (
            f"{self.client:<18} {self.rate:>9.0f} msg/s  p50 {p50:6.2f} ms  p99 {p99:6.2f} ms"
            f"  CPU µs/msg: client {self.cpu_seconds / self.messages * 1e6:4.0f}"
            f", server {self.server_cpu_seconds / self.messages * 1e6:4.0f}"
        )


def drive(server: FakeLongConnServer, messages: int, concurrency: int) -> tuple[float, list[float]]:
    """Push ``messages`` texts, ``concurrency`` outstanding; return seconds and latencies."""
    pushed: dict[str, float] = {}
    latencies: list[float] = []
    done = threading.Event()
    count = [0]
    lock = threading.RLock()  # a reply may arrive before push() has noted its req_id

    def push() -> None:
        with lock:
            count[0] += 1
            started = time.monotonic()
            req_id = server.push_message(f"echo {count[0]}")
            if req_id is None:
                raise RuntimeError("no client holds the bot")
            pushed[req_id] = started

    def on_sent(sent: Sent) -> None:
        stream = sent.body.get("stream") or {}
        with lock:
            if not stream.get("finish") or sent.req_id not in pushed:
                return
            latencies.append(time.monotonic() - pushed.pop(sent.req_id))
            if count[0] < messages:
                push()
            elif not pushed:
                done.set()

    server.on_sent = on_sent
    started = time.monotonic()
    for _ in range(min(concurrency, messages)):
        push()
    if not done.wait(120):
        raise RuntimeError(f"only {len(latencies)} of {messages} messages were answered")
    seconds = time.monotonic() - started
    server.on_sent = None
    return seconds, latencies


def one_round(
    server: FakeLongConnServer,
    client: str,
    cafile: str,
    redis_url: str,
    messages: int,
    concurrency: int,
) -> Round:
    command = [sys.executable, __file__, "--client", client, "--url", server.url]
    command += ["--cafile", cafile, "--redis-url", redis_url]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    try:
        server.wait_for(lambda: server.owners() == 1, timeout=30)
        drive(server, 200, concurrency)  # warm-up
        server.clear()  # every round starts with the same heap in the server
        gc.collect()
        cpu_before, server_before = process_cpu_seconds([process.pid]), time.process_time()
        seconds, latencies = drive(server, messages, concurrency)
        cpu = process_cpu_seconds([process.pid]) - cpu_before
        server_cpu = time.process_time() - server_before
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        server.wait_for(lambda: server.owners() == 0, timeout=10)
    return Round(client, messages, seconds, latencies, cpu, server_cpu)


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, made with openssl."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", nargs="+", choices=CLIENTS, default=list(CLIENTS))
    parser.add_argument("--client", choices=CLIENTS, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--cafile", help=argparse.SUPPRESS)
    parser.add_argument("--redis-url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client in ("sdk", "sdk-thread"):
        run_sdk(args.url, args.cafile, args.client == "sdk-thread")
        return
    if args.client is not None:
        redis_url = args.redis_url if args.client.endswith("redis") else None
        run_flask_wecom(args.url, args.cafile, args.client.endswith("async"), redis_url)
        return

    with tempfile.TemporaryDirectory() as scratch:
        redis = RedisServer(Path(scratch))
        redis.start()
        cert, key = self_signed(Path(scratch))
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        server = FakeLongConnServer(
            BOT,
            SECRET,
            ssl_context=context,
            quota_per_minute=None,
            quota_per_hour=None,
            compression=None,  # the same frames on the wire whatever a client offers
        )
        with server:
            results: dict[str, list[Round]] = {client: [] for client in args.clients}
            try:
                for number in range(args.rounds):
                    turn = number % len(args.clients)  # each client goes first in turn
                    for client in args.clients[turn:] + args.clients[:turn]:
                        result = one_round(
                            server, client, str(cert), redis.url, args.messages, args.concurrency
                        )
                        results[client].append(result)
                        print(f"round {number + 1}: {result.line()}", flush=True)
            finally:
                redis.stop()
    best = {client: max(rounds, key=lambda r: r.rate) for client, rounds in results.items()}
    p99 = {c: min(percentile(r.latencies, 0.99) for r in rounds) for c, rounds in results.items()}
    print(
        f"\nbest of {args.rounds} interleaved rounds, {args.messages} messages each, "
        f"{args.concurrency} outstanding, TLS on loopback, {os.cpu_count()} CPUs:"
    )
    for client in args.clients:
        print(best[client].line())
    for client in (c for c in args.clients if not c.startswith("sdk")):
        # a sync handler's closest peer is the SDK running its blocking code on a thread
        peers = ("sdk", "sdk-thread") if client == "flask_wecom" else ("sdk",)
        for peer in (p for p in peers if p in best):
            print(
                f"{client} / {peer}: throughput x{best[client].rate / best[peer].rate:.2f}, "
                f"best p99 x{p99[client] / p99[peer]:.2f} (lower is better)"
            )
    print(json.dumps({c: {"rate": best[c].rate, "p99_ms": p99[c] * 1e3} for c in args.clients}))


if __name__ == "__main__":
    main()
