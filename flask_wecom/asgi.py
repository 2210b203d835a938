"""ASGI middleware: WeCom callbacks for FastAPI, Starlette, Quart, Django ASGI or plain ASGI.

The same :class:`~flask_wecom.pipeline.Pipeline` as the WSGI middleware, so the same
checks, refusals (status for status), dedup, routing, deadline, late replies, AI-bot
streams and suite acknowledgements. Handlers are the same decorators on a
:class:`~flask_wecom.receivers.Receiver`; here they may also be ``async def``, and an AI
bot's handler may be an async generator::

    bot = BotReceiver()

    @bot.message("text")
    async def answer(message):
        async for chunk in llm.stream(message.content):
            yield chunk

    app = FastAPI()
    app.add_middleware(WeComASGIMiddleware.configured, receivers=[bot])   # from WECOM_* env
    # or: app = WeComASGIMiddleware.from_config(app, bot)

On the event loop: ``async def`` handlers run there, other handlers on a thread pool (never
on the loop); the deadline is asyncio's; a retry waiting for a running first arrival waits
with ``asyncio.sleep``; a memory store is used in place, any other store (Redis) through the
thread pool. The body is read from ``receive`` under the size cap (413 as soon as it is
passed, the rest unread); a client that disconnects ends its request quietly. Requests to
other paths and lifespan events pass through to the wrapped app. This module only
translates between ASGI and the pipeline; it imports no web framework.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import Any

from .dedup import Claim
from .errors import ParseError, PayloadTooLarge, WeComError
from .pipeline import Answer, Endpoint, OutcomeHook, Pipeline, Verified
from .receivers import Receiver
from .stores import MemoryStore
from .wiring import pipeline_from_config

__all__ = ["ASGIApp", "WeComASGIMiddleware"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
#: An ASGI 3 application.
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class _Disconnected(Exception):
    """The client went away before its body arrived."""


class WeComASGIMiddleware:
    """ASGI 3 middleware that speaks WeCom's callback protocol on the pipeline's paths.

    :param app: the ASGI app for every other path and for lifespan events (None: 404s,
        and lifespan answered here).
    :param pipeline: the configured pipeline (see :meth:`from_config`, or build one with
        :class:`~flask_wecom.pipeline.Pipeline` and :class:`~flask_wecom.pipeline.Endpoint`).
    :param executor: where handlers that are not ``async def`` run (default: a pool of the
        pipeline runner's size).
    """

    def __init__(
        self, app: ASGIApp | None, pipeline: Pipeline, *, executor: Executor | None = None
    ) -> None:
        self.app = app
        self.pipeline = pipeline
        self.executor = executor or ThreadPoolExecutor(
            pipeline.runner.threads, thread_name_prefix="flask-wecom-asgi"
        )
        # A memory store answers in microseconds; any other goes through the thread pool.
        self._store_inline = isinstance(pipeline.store, MemoryStore)

    @classmethod
    def from_config(
        cls,
        app: ASGIApp | None,
        *receivers: Receiver,
        config: Mapping[str, Any] | None = None,
        hooks: Iterable[OutcomeHook] = (),
    ) -> WeComASGIMiddleware:
        """The middleware for ``receivers``, configured like the Flask extension from
        ``WECOM_*`` keys in ``config`` (default: the environment).

        :raises ConfigError: a key is missing or malformed (the message names it).
        """
        pipeline = pipeline_from_config(
            receivers, os.environ if config is None else config, hooks=hooks
        )
        return cls(app, pipeline)

    @classmethod
    def configured(
        cls, app: ASGIApp, *, receivers: Iterable[Receiver], config: Mapping[str, Any] | None = None
    ) -> WeComASGIMiddleware:
        """:meth:`from_config` in the shape ``app.add_middleware(...)`` calls (Starlette)."""
        return cls.from_config(app, *receivers, config=config)

    @property
    def endpoints(self) -> tuple[Endpoint, ...]:
        """The mounted endpoints."""
        return self.pipeline.endpoints

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The ASGI application: callbacks to a mounted path go through the pipeline, any
        other request (and the lifespan) to the wrapped app."""
        endpoint = (
            self.pipeline.endpoint(scope.get("path", "")) if scope["type"] == "http" else None
        )
        if endpoint is None:
            if self.app is not None and scope["type"] == "lifespan":
                await self.app(scope, self._draining(receive), send)
            elif self.app is not None:
                await self.app(scope, receive, send)
            elif scope["type"] == "lifespan":
                await self._lifespan(receive, send)
            elif scope["type"] == "http":
                await _send(send, Answer(404, [("Content-Type", "text/plain")], b"not found\n"))
            return
        answer = await self.handle(endpoint, scope, receive)
        if answer is not None:
            await _send(send, answer)

    async def handle(self, endpoint: Endpoint, scope: Scope, receive: Receive) -> Answer | None:
        """Answer one request to ``endpoint`` (None: the client went away)."""
        pipeline = self.pipeline
        method = scope.get("method", "GET").upper()
        client = scope.get("client")
        remote = client[0] if client else "?"
        try:
            query = pipeline.check_query(method, scope.get("query_string", b"").decode("latin-1"))
            if method == "GET":
                return pipeline.verify_url(endpoint, query, remote)
            body = await _read_body(scope, receive, pipeline.max_body)
            verified = pipeline.open(endpoint, query, body, remote)
        except WeComError as exc:
            return pipeline.refuse(endpoint, method, remote, exc)
        except _Disconnected:
            return None
        await asyncio.sleep(0)  # let other callbacks run between decryption and the handler
        claim = await self._claim(verified)
        if claim is not None and claim.state in ("replay", "waited"):
            return pipeline.replay(verified, claim)
        started = time.perf_counter()
        try:
            reply = await pipeline.dispatch_async(verified, self.executor)
        except WeComError as exc:
            pipeline.settle(claim, None)
            return pipeline.refuse(endpoint, method, remote, exc)
        except BaseException:
            pipeline.settle(claim, None)
            raise
        return pipeline.answer(
            verified,
            claim,
            pipeline.render(verified, reply),
            handler_seconds=time.perf_counter() - started,
        )

    async def _claim(self, verified: Verified) -> Claim | None:
        """The dedup claim, waiting for a running first arrival without blocking the loop."""
        steps = self.pipeline.claim_steps(verified)
        if steps is None:
            return None

        def step() -> float | Claim:
            try:
                return next(steps)
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]

        loop = asyncio.get_running_loop()
        while True:
            value = (
                step() if self._store_inline else await loop.run_in_executor(self.executor, step)
            )
            if isinstance(value, Claim):
                return value
            await asyncio.sleep(value)

    def _draining(self, receive: Receive) -> Receive:
        """The wrapped app's lifespan ``receive``: at shutdown, late replies finish first."""

        async def receive_after_draining() -> Message:
            message = await receive()
            if message["type"] == "lifespan.shutdown":
                await self.pipeline.drain()
            return message

        return receive_after_draining

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        """Lifespan without a wrapped app: start at once; on shutdown, finish late replies."""
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.pipeline.drain()
                await send({"type": "lifespan.shutdown.complete"})
                return


async def _read_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    """The whole body, refused as soon as it passes ``limit`` bytes."""
    for name, value in scope.get("headers", ()):
        if name.lower() == b"content-length":
            if not (value.isascii() and value.isdigit()):
                raise ParseError("Content-Length is not a number")
            # Compare digit counts first: int() of thousands of digits is itself an attack.
            if len(value) > 18 or int(value) > limit:
                raise PayloadTooLarge(f"body over {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Disconnected
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"body over {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _send(send: Send, answer: Answer) -> None:
    status, headers, body = answer
    raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers]
    raw.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})
