"""The ASGI middleware: how long one callback blocks the event loop, and uvicorn throughput.

1. **Loop blocking**, in process: ``--callbacks`` fresh callbacks, ``--concurrency`` at a
   time, through :class:`~flask_wecom.asgi.WeComASGIMiddleware` with an ``async def`` echo
   handler and with a plain one; every step the event loop runs (``asyncio.Handle._run``) is
   timed (CPU time of the loop's thread, so that the OS running another process meanwhile
   does not count), and the longest is reported: the longest the loop was blocked by one
   step of one callback, crypto and parsing included (issue 16's target: < 1 ms). A memory
   store.
2. **Throughput under uvicorn** (1 worker each, pinned to CPU 0, the load on CPU 1): a plain
   Starlette route returning the same reply to the plaintext POST, against the middleware
   with its defaults (memory dedup, the deadline on), best of ``--rounds`` interleaved rounds.

Run: ``.venv/bin/python bench/asgi_bench.py`` (or ``scripts/bench.sh asgi``).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.e2e_bench import drive, process_cpu_seconds, render  # noqa: E402
from bench.pipeline_bench import CORP_ID, KEY, TOKEN  # noqa: E402
from bench.stats import percentile  # noqa: E402
from flask_wecom.asgi import WeComASGIMiddleware  # noqa: E402
from flask_wecom.crypto import WeComCrypto  # noqa: E402
from flask_wecom.messages import Message  # noqa: E402
from flask_wecom.pipeline import Endpoint, Pipeline  # noqa: E402
from flask_wecom.receivers import Receiver  # noqa: E402
from flask_wecom.testing import CallbackSigner  # noqa: E402

REPLY = "Thanks, your message is received. 已收到。"


def receiver(asynchronous: bool) -> Receiver:
    """An echo receiver whose handler is ``async def`` or a plain function."""
    echo = Receiver()
    if asynchronous:

        @echo.message("text")
        async def answer_async(message: Message) -> str:
            return REPLY

    else:

        @echo.message("text")
        def answer(message: Message) -> str:
            return REPLY

    return echo


def wecom_app(asynchronous: bool = True) -> WeComASGIMiddleware:
    """What uvicorn serves: ``bench.asgi_bench:wecom_app`` (factory)."""
    crypto = WeComCrypto(TOKEN, KEY, CORP_ID)
    return WeComASGIMiddleware(
        None, Pipeline([Endpoint("/wecom", crypto, receiver=receiver(asynchronous))])
    )


def plain_app() -> Any:
    """A Starlette route answering the reply to a plaintext POST: ``bench.asgi_bench:plain_app``."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    async def callback(request: Request) -> Response:
        await request.body()  # read the (plaintext) body, as a real handler would
        return Response(REPLY, media_type="text/plain")

    return Starlette(routes=[Route("/wecom", callback, methods=["POST"])])


# -- 1. loop blocking ----------------------------------------------------------------------------


def longest_step(
    app: WeComASGIMiddleware, callbacks: int, concurrency: int
) -> tuple[float, float, float]:
    """(longest, 99th percentile) seconds any one event-loop step took while serving, without
    the interpreter's garbage collections, and the longest of those collections."""
    signer = CallbackSigner(TOKEN, KEY, CORP_ID)
    requests = [signer.text("hello") for _ in range(callbacks)]
    steps: list[float] = []
    collections: list[float] = []
    original: Callable[..., Any] = asyncio.events.Handle._run  # type: ignore[attr-defined]
    collecting: dict[str, float] = {}

    def on_gc(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            collecting["since"] = time.thread_time()
        else:
            collections.append(time.thread_time() - collecting.pop("since"))

    def timed(handle: Any) -> None:
        # CPU time of the loop's thread: what the step itself cost, not the time the OS
        # gave this process's CPU to another (the machines here are shared and noisy).
        started, collected = time.thread_time(), sum(collections)
        original(handle)
        steps.append(time.thread_time() - started - (sum(collections) - collected))

    async def one(index: int) -> None:
        request = requests[index]
        body = [{"type": "http.request", "body": request.body, "more_body": False}]
        scope = {
            "type": "http",
            "method": "POST",
            "path": "/wecom",
            "query_string": request.query_string.encode(),
            "headers": [(b"content-length", str(len(request.body)).encode())],
        }

        async def receive() -> dict[str, Any]:
            return body.pop()

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start" and message["status"] != 200:
                raise AssertionError(f"status {message['status']}")

        await app(scope, receive, send)

    async def serve_all() -> None:
        # ``concurrency`` clients, each sending its share in turn: no step of the harness
        # itself (such as creating thousands of tasks at once) is timed as a callback's.
        turns = iter(range(callbacks))

        async def client() -> None:
            for index in turns:
                await one(index)

        await asyncio.gather(*(client() for _ in range(concurrency)))

    asyncio.run(serve_all())  # warm up: lazy imports, pool threads
    steps.clear()
    asyncio.events.Handle._run = timed  # type: ignore[attr-defined]
    gc.callbacks.append(on_gc)
    try:
        requests[:] = [signer.text("hello") for _ in range(callbacks)]
        asyncio.run(serve_all())
    finally:
        asyncio.events.Handle._run = original  # type: ignore[attr-defined]
        gc.callbacks.remove(on_gc)
    return max(steps), percentile(steps, 0.99), max(collections, default=0.0)


# -- 2. uvicorn ----------------------------------------------------------------------------------


def start_uvicorn(factory: str, port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [
            sys.executable,
            *("-m", "uvicorn", "--factory", factory, "--host", "127.0.0.1", "--port", str(port)),
            *("--log-level", "warning", "--no-access-log"),
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            if (os.cpu_count() or 1) >= 2:
                os.sched_setaffinity(process.pid, {0})
            return process
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"uvicorn {factory} did not start")


def throughput(port: int, encrypted: bool, seconds: float, pid: int) -> tuple[float, float, float]:
    """(requests per second, server CPU us per request, p99 ms) for one measured run."""
    signer = CallbackSigner(TOKEN, KEY, CORP_ID)
    size = int(4000 * seconds * 2) + 16
    callbacks = [signer.text("hello, how are you today?") for _ in range(size if encrypted else 1)]
    pool = [render(c) if encrypted else render(c, c.plaintext) for c in callbacks]
    cpu = 1 if (os.cpu_count() or 1) >= 2 else None
    drive(port, pool, 0.5, 8, 2, cpu)  # warm-up
    before = process_cpu_seconds([pid])
    tally, wall = drive(port, pool if not encrypted else pool[size // 2 :], seconds, 8, 2, cpu)
    server_cpu = process_cpu_seconds([pid]) - before
    bad = sum(n for status, n in tally.statuses.items() if status != 200)
    if bad or tally.errors:
        raise AssertionError(f"{bad} non-200 answers, errors {dict(tally.errors)}")
    count = len(tally.latencies)
    return count / wall, server_cpu / count * 1e6, percentile(tally.latencies, 0.99) * 1000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--callbacks", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)

    print("longest event-loop step (one step of one callback), memory store:")
    worst = 0.0
    for label, asynchronous in (("async def handler", True), ("plain handler", False)):
        longest, p99, pause = longest_step(
            wecom_app(asynchronous), args.callbacks, args.concurrency
        )
        worst = max(worst, longest)
        print(
            f"  {label:<20} longest {longest * 1e3:6.3f} ms   p99 {p99 * 1e3:6.3f} ms   "
            f"(longest garbage collection of the interpreter apart: {pause * 1e3:.1f} ms)"
        )
    print(f"  target < 1 ms: {'ok' if worst < 0.001 else 'MISSED'}")

    servers = {
        "plain Starlette route": ("bench.asgi_bench:plain_app", False),
        "flask_wecom ASGI, defaults": ("bench.asgi_bench:wecom_app", True),
    }
    started = {name: start_uvicorn(factory, free_port()) for name, (factory, _) in servers.items()}
    results: dict[str, list[tuple[float, float, float]]] = {name: [] for name in servers}
    try:
        for _ in range(args.rounds):  # interleaved: a noisy spell hits both
            for name, (_, encrypted) in servers.items():
                process = started[name]
                port = int(process.args[process.args.index("--port") + 1])  # type: ignore[union-attr,index]
                results[name].append(throughput(port, encrypted, args.seconds, process.pid))
    finally:
        for process in started.values():
            process.terminate()
            process.wait(10)
    print("\nunder uvicorn (1 worker on CPU 0, load on CPU 1), best round:")
    best = {name: max(rounds) for name, rounds in results.items()}
    for name, (rate, cpu_us, p99) in best.items():
        print(f"  {name:<28} {rate:8.0f} req/s  {cpu_us:6.0f} us CPU/req  p99 {p99:6.1f} ms")
    ratio = best["flask_wecom ASGI, defaults"][0] / best["plain Starlette route"][0]
    print(f"  ratio flask_wecom / plain: {ratio:.2f}")
    return 0 if worst < 0.001 else 1


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


if __name__ == "__main__":
    raise SystemExit(main())
