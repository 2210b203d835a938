"""Handlers that may be sync or async, results that may be sync or async streams.

Framework-free helpers shared by the asyncio adapters (the AI bot's long connection, the
ASGI middleware):

* :func:`call`: await an ``async def`` handler on the event loop, run any other callable on
  a thread pool (never on the loop), with the caller's :mod:`contextvars` (so
  ``current_message`` and Flask's app context follow it);
* :func:`is_stream`: whether a handler's result is a stream of chunks: a sync iterable or an
  async iterable that is not text, bytes, a mapping or a reply;
* :func:`iterate`: iterate such a result asynchronously, each ``next()`` of a sync iterator on
  the thread pool.

Usage::

    result = await call(handler, message, executor=pool)
    if is_stream(result):
        async for chunk in iterate(result, executor=pool):
            ...
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator, Mapping
from concurrent.futures import Executor
from typing import Any

from .replies import Reply

__all__ = ["call", "is_stream", "iterate"]

_DONE = object()


async def call(
    func: Callable[..., Any], /, *args: Any, executor: Executor | None = None, **kwargs: Any
) -> Any:
    """Call ``func``: awaited on the loop if it is ``async def``, else on ``executor``.

    The sync call runs in a copy of the current context. A sync callable that returns an
    awaitable (a ``functools.partial`` of a coroutine function) has it awaited too.
    """
    if inspect.iscoroutinefunction(func):
        return await func(*args, **kwargs)
    loop = asyncio.get_running_loop()
    context = contextvars.copy_context()
    job = functools.partial(context.run, func, *args, **kwargs)
    result = await loop.run_in_executor(executor, job)
    if inspect.isawaitable(result):
        return await result
    return result


def is_stream(result: Any) -> bool:
    """True for a result that streams: a sync or async iterable other than text or a reply."""
    if isinstance(result, AsyncIterable):
        return True
    return isinstance(result, Iterable) and not isinstance(result, Reply | str | bytes | Mapping)


async def iterate(result: Any, *, executor: Executor | None = None) -> AsyncIterator[Any]:
    """Yield the items of a sync or async iterable; a sync ``next()`` runs on ``executor``."""
    if isinstance(result, AsyncIterable):
        async for item in result:
            yield item
        return
    iterator: Iterator[Any] = iter(result)
    loop = asyncio.get_running_loop()
    step = functools.partial(contextvars.copy_context().run, next, iterator, _DONE)
    while True:
        item = await loop.run_in_executor(executor, step)
        if item is _DONE:
            return
        yield item
