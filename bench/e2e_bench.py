"""End-to-end throughput: a plain Flask route against the same route behind the WeCom middleware.

Every configuration runs under real gunicorn on 127.0.0.1 and is driven by the same load
generator in one run:

* ``plain``: a Flask route answering a fixed plaintext reply to a plaintext POST (the
  callback's plaintext XML, unencrypted);
* ``middleware``: the same route behind :class:`~flask_wecom.WeComMiddleware` with its
  defaults: verify, decrypt, parse, claim the MsgId in the per-worker memory dedup store,
  call the route, encrypt and sign its answer (issue 4's target: at least 85% of ``plain``);
* ``middleware-nodedup``: the same without retry dedup;
* ``middleware-redis``: the same with dedup in a real Redis shared by the workers (issue 7's
  target: at least 90% of ``middleware-nodedup``);
* ``extension``: a handler behind the Flask extension with its defaults (routing, reply
  rendering, the handler on the deadline pool of ``WECOM_DEADLINE``);
* ``extension-inline``: the same with the handler run inline (``WECOM_DEADLINE=0``);
* ``glue``: a Flask route doing what users hand-write around wechatpy 1.8.18 (decrypt,
  parse, create a reply, encrypt), the peer issue 14 compares the extension with.

Encrypted callbacks are signed before the clock starts, each with its own MsgId, so dedup
sees only first arrivals. The load generator writes pre-rendered HTTP/1.1 requests on
keep-alive sockets from several processes and reads each response whole. By default the
gunicorn workers are pinned to CPU 0 and the load generator and Redis to CPU 1 (on a 2-CPU
machine they would otherwise compete; Redis, like the load, stands for another machine); the
CPU each side used, and the server's CPU per request, are printed so you can see which was the
bottleneck. All servers run at once (idle when not driven) and each configuration is measured
``--rounds`` times, interleaved; the best round is reported with the spread of all rounds, as
interference from anything else on the machine only ever slows a round down.

Run: ``.venv/bin/python bench/e2e_bench.py --seconds 10`` (or ``scripts/bench.sh e2e``).
To add a configuration, append one :class:`Config` to :data:`CONFIGS`.
"""

from __future__ import annotations

import argparse
import itertools
import multiprocessing
import os
import socket
import sys
import tempfile
import threading
import time
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path

from flask import Flask, request

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.stats import percentile  # noqa: E402
from flask_wecom import WeCom, WeComCrypto, WeComMiddleware  # noqa: E402
from flask_wecom.dedup import Deduplicator  # noqa: E402
from flask_wecom.messages import Message  # noqa: E402
from flask_wecom.stores import store_from_url  # noqa: E402
from flask_wecom.testing import CallbackSigner, SignedRequest  # noqa: E402
from harness.forge import CORP_ID, ENV, KEY, TOKEN  # noqa: E402
from harness.redis_server import RedisServer  # noqa: E402
from harness.web_servers import GunicornServer  # noqa: E402

REPLY = "Thanks, your message is received. 已收到。"


def create_app(kind: str) -> Flask:
    """The app gunicorn serves: ``bench.e2e_bench:create_app('plain')``, ``('middleware')`` or
    ``('extension')``. ``WECOM_*`` environment variables configure the WeCom parts."""
    app = Flask(__name__)
    settings = {k: v for k, v in os.environ.items() if k.startswith("WECOM_")}
    if kind == "glue":  # what users hand-write around wechatpy 1.8.18 (issue 14's peer)
        from wechatpy.enterprise import create_reply, parse_message
        from wechatpy.enterprise.crypto import WeChatCrypto

        crypto = WeChatCrypto(TOKEN, KEY, CORP_ID)

        @app.post("/wecom")
        def glue() -> str:
            args = request.args
            xml = crypto.decrypt_message(
                request.get_data(), args["msg_signature"], args["timestamp"], args["nonce"]
            )
            reply = create_reply(REPLY, parse_message(xml)).render()
            return str(crypto.encrypt_message(reply, args["nonce"]))

        return app
    if kind == "extension":
        app.config.update(settings)
        wecom = WeCom(app)

        @wecom.message("text")
        def reply(message: Message) -> str:
            return REPLY

        return app

    @app.post("/wecom")
    def plain() -> str:
        request.get_data()  # read the (plaintext) body, as a real handler would
        return REPLY

    if kind == "middleware":
        crypto = WeComCrypto(TOKEN, KEY, CORP_ID)
        redis_url = settings.get("WECOM_REDIS_URL")
        dedup: Deduplicator | bool = (
            Deduplicator(store_from_url(redis_url))
            if redis_url
            else settings.get("WECOM_DEDUP") != "0"
        )
        app.wsgi_app = WeComMiddleware(app.wsgi_app, crypto, dedup=dedup)  # type: ignore[method-assign]
    return app


@dataclass(frozen=True)
class Config:
    """One server set-up to measure."""

    name: str
    #: The argument of :func:`create_app`.
    kind: str
    env: dict[str, str] = field(default_factory=dict)
    #: The configuration this one is compared with, and the least ratio it must keep.
    target: tuple[str, float] | None = None

    @property
    def encrypted(self) -> bool:
        return self.kind != "plain"


#: Replaced by the URL of the Redis this run starts.
REDIS = "{redis}"

CONFIGS = [
    Config("plain", "plain"),
    Config("middleware", "middleware", ENV, target=("plain", 0.85)),
    Config("middleware-nodedup", "middleware", {**ENV, "WECOM_DEDUP": "0"}),
    Config(
        "middleware-redis",
        "middleware",
        {**ENV, "WECOM_REDIS_URL": REDIS},
        target=("middleware-nodedup", 0.90),
    ),
    Config("extension", "extension", ENV),
    Config("glue", "glue"),
    Config("extension-inline", "extension", {**ENV, "WECOM_DEADLINE": "0"}),
]


# -- the load generator -------------------------------------------------------------------------


def render(callback: SignedRequest, body: bytes | None = None) -> bytes:
    """The whole HTTP/1.1 request, ready to write to a keep-alive socket."""
    data = callback.body if body is None else body
    head = (
        f"POST /wecom?{callback.query_string} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Content-Type: text/xml\r\nContent-Length: {len(data)}\r\n\r\n"
    )
    return head.encode("ascii") + data


def read_response(sock: socket.socket, buffer: bytearray) -> tuple[int, bytes]:
    """Read one response (head plus Content-Length body); leftovers stay in ``buffer``."""
    while (end := buffer.find(b"\r\n\r\n")) < 0:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        buffer += chunk
    head = bytes(buffer[:end])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.lower() == b"content-length":
            length = int(value)
    while len(buffer) < end + 4 + length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection mid-body")
        buffer += chunk
    body = bytes(buffer[end + 4 : end + 4 + length])
    del buffer[: end + 4 + length]
    return int(head.split(b" ", 2)[1]), body


@dataclass
class Tally:
    """What one load process measured."""

    latencies: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    #: (index into the request pool, response body) of the first few answers, to check.
    samples: list[tuple[int, bytes]] = field(default_factory=list)
    wrapped: int = 0
    cpu_seconds: float = 0.0


def load_process(
    port: int,
    pool: list[bytes],
    first: int,
    stride: int,
    connections: int,
    seconds: float,
    cpu: int | None,
    out: Connection,
) -> None:
    """Drive the server from ``connections`` keep-alive connections for ``seconds``.

    The process sends ``pool[first]``, ``pool[first + stride]``, ... in turn, whichever of its
    connections is free next, so no callback is sent twice (by any process) until the pool is
    used up, however unevenly the server serves the connections.
    """
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    tally = Tally()
    lock = threading.Lock()
    turns = itertools.count()  # thread-safe in CPython: one number per request
    start = time.perf_counter()
    deadline = start + seconds

    def connection() -> None:
        latencies: list[float] = []
        statuses: Counter[int] = Counter()
        samples: list[tuple[int, bytes]] = []
        wrapped = 0
        buffer = bytearray()
        try:
            with socket.create_connection(("127.0.0.1", port)) as sock:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                while (now := time.perf_counter()) < deadline:
                    turn, index = divmod(first + next(turns) * stride, len(pool))
                    wrapped = max(wrapped, turn)
                    sock.sendall(pool[index])
                    status, body = read_response(sock, buffer)
                    latencies.append(time.perf_counter() - now)
                    statuses[status] += 1
                    if len(samples) < 20:
                        samples.append((index, body))
        except OSError as exc:
            with lock:
                tally.errors[type(exc).__name__] += 1
        with lock:
            tally.latencies += latencies
            tally.statuses.update(statuses)
            tally.samples += samples
            tally.wrapped = max(tally.wrapped, wrapped)

    threads = [threading.Thread(target=connection) for _ in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    times = os.times()
    tally.cpu_seconds = times.user + times.system
    out.send(tally)
    out.close()


def drive(
    port: int, pool: list[bytes], seconds: float, connections: int, processes: int, cpu: int | None
) -> tuple[Tally, float]:
    """Run the load processes; return the merged tally and the wall time."""
    context = multiprocessing.get_context("fork")  # the pool is inherited, not pickled
    workers = []
    for p in range(processes):
        receive, send = context.Pipe(duplex=False)
        share = len(range(p, connections, processes))  # this process's connections
        process = context.Process(
            target=load_process, args=(port, pool, p, processes, share, seconds, cpu, send)
        )
        workers.append((process, receive))
    started = time.perf_counter()
    for process, _ in workers:
        process.start()
    merged = Tally()
    for process, receive in workers:
        tally: Tally = receive.recv()
        process.join()
        merged.latencies += tally.latencies
        merged.statuses.update(tally.statuses)
        merged.errors.update(tally.errors)
        merged.samples += tally.samples
        merged.wrapped = max(merged.wrapped, tally.wrapped)
        merged.cpu_seconds += tally.cpu_seconds
    return merged, time.perf_counter() - started


# -- measuring ----------------------------------------------------------------------------------


def process_cpu_seconds(pids: list[int]) -> float:
    """User plus system CPU time of ``pids``, from /proc."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / os.sysconf("SC_CLK_TCK")


@dataclass
class Result:
    """One measurement of one configuration."""

    config: Config
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    bad: int
    client_cpu: float
    server_cpu: float
    wrapped: int

    @property
    def throughput(self) -> float:
        return self.requests / self.seconds


def build_pool(config: Config, size: int) -> tuple[list[SignedRequest], list[bytes]]:
    """``size`` distinct signed callbacks (encrypted) or one plaintext POST (plain)."""
    signer = CallbackSigner(TOKEN, KEY, CORP_ID)
    if not config.encrypted:
        callback = signer.text("hello, how are you today?")
        return [callback], [render(callback, callback.plaintext)]
    callbacks = [signer.text("hello, how are you today?") for _ in range(size)]
    return callbacks, [render(c) for c in callbacks]


def check_samples(config: Config, requests: list[SignedRequest], tally: Tally) -> None:
    """Every sampled answer is the right reply: plain text, or encrypted and signed."""
    signer = CallbackSigner(TOKEN, KEY, CORP_ID)
    for index, body in tally.samples:
        if not config.encrypted:
            content: str | None = body.decode()
        elif config.kind == "middleware":  # the route's own text, encrypted as it is
            content = (signer.decrypt_reply(body, requests[index]) or b"").decode()
        else:  # the extension and the wechatpy glue render a text reply
            content = getattr(signer.open_reply(body, requests[index]), "content", None)
        if content != REPLY:
            raise AssertionError(f"{config.name}: wrong reply {content!r}")


def serve(config: Config, args: argparse.Namespace, stack: ExitStack) -> GunicornServer:
    """Start ``config``'s gunicorn (until ``stack`` closes), pinned to CPU 0 if asked."""
    app = f"bench.e2e_bench:create_app({config.kind!r})"
    env = {k: v.replace(REDIS, args.redis_url) for k, v in config.env.items()}
    server = stack.enter_context(
        GunicornServer(
            app,
            env=env,
            workers=args.workers,
            threads=args.threads,
            worker_class="sync" if args.sync else "gthread",
        )
    )
    if args.pin:
        for pid in server_pids(server):
            os.sched_setaffinity(pid, {0})
    return server


def server_pids(server: GunicornServer) -> list[int]:
    return [server.process.pid, *server.worker_pids()] if server.process else []


def measure(
    config: Config, server: GunicornServer, args: argparse.Namespace, rate: float
) -> Result:
    """Warm ``server`` up, then drive it for ``args.seconds``.

    ``rate`` (requests per second, an upper estimate) sizes the pools of distinct callbacks:
    twice what the warm-up and the measured run could use, so no connection runs out and
    resends one (which dedup would answer from its store, flattering the figure).
    """
    _, warm_pool = build_pool(config, int(rate * args.warmup * 2) + args.connections)
    requests, pool = build_pool(config, int(rate * args.seconds * 2) + args.connections)
    cpu = 1 if args.pin else None
    drive(server.port, warm_pool, args.warmup, args.connections, args.processes, cpu)
    before = process_cpu_seconds(server_pids(server))
    tally, seconds = drive(server.port, pool, args.seconds, args.connections, args.processes, cpu)
    server_cpu = process_cpu_seconds(server_pids(server)) - before
    check_samples(config, requests, tally)
    return Result(
        config,
        len(tally.latencies),
        seconds,
        percentile(tally.latencies, 0.50) * 1000,
        percentile(tally.latencies, 0.99) * 1000,
        sum(n for status, n in tally.statuses.items() if status != 200)
        + sum(tally.errors.values()),
        tally.cpu_seconds,
        server_cpu,
        tally.wrapped if config.encrypted else 0,  # plain resends one request by design
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds per measurement")
    parser.add_argument("--rounds", type=int, default=3, help="measurements per configuration")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds first")
    parser.add_argument("--connections", type=int, default=8, help="keep-alive connections")
    parser.add_argument("--processes", type=int, default=2, help="load generator processes")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--threads", type=int, default=4, help="threads per gunicorn worker")
    parser.add_argument(
        "--sync", action="store_true", help="gunicorn's sync worker class instead of gthread"
    )
    parser.add_argument("--no-pin", dest="pin", action="store_false", help="do not pin CPUs")
    parser.add_argument("--only", nargs="*", help="run only these configurations")
    args = parser.parse_args(argv)
    args.pin = args.pin and (os.cpu_count() or 1) >= 2
    configs = [c for c in CONFIGS if not args.only or c.name in args.only]
    rounds: dict[str, list[Result]] = {c.name: [] for c in configs}
    rate = 3000.0  # a first guess above what one CPU serves; then the fastest rate seen
    with ExitStack() as stack:
        redis = RedisServer(Path(stack.enter_context(tempfile.TemporaryDirectory())))
        redis.start()
        stack.callback(redis.stop)
        if args.pin and redis.pid:  # Redis is infrastructure, like the load: off the app's CPU
            os.sched_setaffinity(redis.pid, {1})
        args.redis_url = redis.url
        servers = [serve(config, args, stack) for config in configs]
        for _ in range(args.rounds):  # interleaved, so a noisy spell hits every configuration
            for config, server in zip(configs, servers, strict=True):
                result = measure(config, server, args, rate)
                rounds[config.name].append(result)
                rate = max(rate, result.throughput)
    best = [max(results, key=lambda r: r.throughput) for results in rounds.values()]
    report(best, rounds, args)
    clean = all(r.bad == 0 and r.wrapped == 0 for results in rounds.values() for r in results)
    return 0 if clean and meets_target(best) else 1


def verdicts(results: list[Result]) -> list[tuple[str, float, float, bool]]:
    """(name, ratio to its reference, target, met) for each measured configuration with a target."""
    by_name = {r.config.name: r for r in results}
    found = []
    for r in results:
        if r.config.target and r.config.target[0] in by_name:
            reference, least = r.config.target
            ratio = r.throughput / by_name[reference].throughput
            found.append((f"{r.config.name} / {reference}", ratio, least, ratio >= least))
    return found


def meets_target(results: list[Result]) -> bool:
    return all(met for *_, met in verdicts(results))


def report(best: list[Result], rounds: dict[str, list[Result]], args: argparse.Namespace) -> None:
    """One line per configuration: its best round, and the spread of all its rounds."""
    plain = next((r for r in best if r.config.name == "plain"), None)
    print(
        f"gunicorn {'sync' if args.sync else 'gthread'} {args.workers}x"
        f"{1 if args.sync else args.threads}, {args.connections} keep-alive "
        f"connections from {args.processes} processes; best of {args.rounds} interleaved "
        f"rounds of {args.seconds:.0f} s"
        + (", server on CPU 0, load and Redis on CPU 1" if args.pin else "")
    )
    print(
        f"{'configuration':<20}{'req/s':>7}{'all rounds':>18}{'ratio':>7}{'p50 ms':>8}"
        f"{'p99 ms':>8}{'bad':>5}{'server CPU':>12}{'µs/req':>8}{'load CPU':>10}"
    )
    for r in best:
        ratio = f"{r.throughput / plain.throughput:.2f}" if plain else "-"
        spread = "/".join(f"{x.throughput:.0f}" for x in rounds[r.config.name])
        bad = sum(x.bad for x in rounds[r.config.name])
        wrapped = sum(x.wrapped for x in rounds[r.config.name])
        print(
            f"{r.config.name:<20}{r.throughput:>7.0f}{spread:>18}{ratio:>7}{r.p50_ms:>8.2f}"
            f"{r.p99_ms:>8.2f}{bad:>5}{r.server_cpu / r.seconds:>11.0%} "
            f"{r.server_cpu / r.requests * 1e6:>8.0f}{r.client_cpu / r.seconds:>9.0%}"
            + (f"  (pool wrapped {wrapped}x: replays)" if wrapped else "")
        )
    for name, ratio, least, met in verdicts(best):
        print(f"target {name}: {ratio:.2f} (>= {least:.2f}) {'met' if met else 'MISSED'}")


if __name__ == "__main__":
    sys.exit(main())
