"""Handlers that may be sync or async, results that may be sync or async streams.

Framework-free helpers shared by the asyncio adapters (the AI bot's long connection, the
ASGI middleware):

* :func:`call`: await an ``async def`` handler on the event loop, run any other callable on
  a thread pool (never on the loop), with the caller's :mod:`contextvars` (so
  ``current_message`` and Flask's app context follow it);
* :func:`is_stream`: whether a handler's result is a stream of chunks: a sync iterable or an
  async iterable that is not text, bytes, a mapping or a reply;
* :func:`iterate`: iterate such a result asynchronously, each ``next()`` of a sync iterator on
  the thread pool;
* :class:`HandlerPool`: a thread pool that :func:`call` and :func:`iterate` use more cheaply
  than ``loop.run_in_executor``: no :class:`concurrent.futures.Future` per call, and results
  that finish together wake the loop once.

Usage::

    result = await call(handler, message, executor=pool)
    if is_stream(result):
        async for chunk in iterate(result, executor=pool):
            ...
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import contextvars
import functools
import inspect
import threading
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator, Mapping
from concurrent.futures import Executor, Future
from typing import Any

from .replies import Reply

__all__ = ["HandlerPool", "call", "is_stream", "iterate"]

_DONE = object()
#: A job: the callable, and the future (asyncio's or concurrent's) that gets its outcome.
_Job = tuple[Callable[[], Any], "asyncio.Future[Any] | Future[Any]"]


class HandlerPool(Executor):
    """Threads for sync handlers called from one event loop, cheap per call.

    ``await pool.run(func)`` queues ``func`` and awaits an asyncio future: no
    :class:`concurrent.futures.Future` and no callback chain per call. Fast handlers are not
    spread over many threads (each wake-up is a thread switch, and the GIL runs one at a
    time anyway): a call goes to a parked thread only when no thread is busy, and another
    one is woken (or started, up to ``max_workers``) when calls still wait ``spread_after``
    seconds later, so handlers that block still run side by side. Results that finish while
    the loop is busy are handed back together, with one wake-up of the loop.
    :meth:`submit` serves any other caller (a parked thread at once).

    :param max_workers: the most threads (handlers that block hold one each).
    :param thread_name_prefix: the threads' names start with it.
    :param spread_after: seconds a queued call waits before another thread is woken for it.
    """

    def __init__(
        self,
        max_workers: int,
        thread_name_prefix: str = "flask-wecom-handler",
        *,
        spread_after: float = 0.001,
    ) -> None:
        if max_workers < 1:
            raise ValueError("max_workers must be at least 1")
        self.max_workers, self.thread_name_prefix = max_workers, thread_name_prefix
        self.spread_after = spread_after
        self._jobs: collections.deque[_Job] = collections.deque()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._parked: list[threading.Lock] = []  # a parked thread waits for its lock
        self._active = 0  # threads not parked: running a job or looking for one
        self._closed = False
        self._spreading = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._finished: list[tuple[asyncio.Future[Any], Any, BaseException | None]] = []

    async def run(self, func: Callable[[], Any]) -> Any:
        """Run ``func()`` on a thread and return its result (from the pool's event loop)."""
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop = loop
        elif self._loop is not loop:
            raise RuntimeError("a HandlerPool serves one event loop")
        future: asyncio.Future[Any] = loop.create_future()
        with self._lock:
            self._enqueue((func, future))
            if self._active == 0:
                self._wake()
            elif not self._spreading and self._can_grow():
                self._spreading = True
                loop.call_later(self.spread_after, self._spread)
        return await future

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        """Run ``fn(*args, **kwargs)`` on a thread (:class:`~concurrent.futures.Executor`)."""
        future: Future[Any] = Future()
        with self._lock:
            self._enqueue((functools.partial(fn, *args, **kwargs), future))
            self._wake()
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop the threads once the queued jobs ran (``cancel_futures``: drop those)."""
        with self._lock:
            self._closed = True
            threads = list(self._threads)
            dropped = list(self._jobs) if cancel_futures else []
            if cancel_futures:
                self._jobs.clear()
            while self._parked:
                self._wake()
        for _, future in dropped:
            _cancel(future)
        if wait:
            for thread in threads:
                thread.join()

    def _enqueue(self, job: _Job) -> None:
        """Lock held."""
        if self._closed:
            raise RuntimeError("cannot run a job after shutdown")
        self._jobs.append(job)

    def _can_grow(self) -> bool:
        """Lock held: whether a thread could be woken or started."""
        return bool(self._parked) or len(self._threads) < self.max_workers

    def _wake(self) -> None:
        """Lock held: unpark a thread, or start one (nothing if every allowed one is busy)."""
        if self._parked:
            self._active += 1
            self._parked.pop().release()
        elif len(self._threads) < self.max_workers:
            self._active += 1
            thread = threading.Thread(
                target=self._work,
                name=f"{self.thread_name_prefix}_{len(self._threads)}",
                daemon=True,
            )
            self._threads.append(thread)
            thread.start()

    def _spread(self) -> None:
        """On the loop: calls still wait; wake another thread, and look again later."""
        with self._lock:
            self._spreading = False
            if self._jobs and self._can_grow():
                self._wake()
                if self._jobs and self._can_grow() and self._loop is not None:
                    self._spreading = True
                    self._loop.call_later(self.spread_after, self._spread)

    def _work(self) -> None:
        parking = threading.Lock()
        parking.acquire()  # held: acquiring it again parks the thread until a _wake
        while True:
            with self._lock:
                job = self._jobs.popleft() if self._jobs else None
                if job is None:
                    self._active -= 1
                    if self._closed:
                        return
                    self._parked.append(parking)
            if job is None:
                parking.acquire()
                continue
            self._run(*job)

    def _run(self, func: Callable[[], Any], future: asyncio.Future[Any] | Future[Any]) -> None:
        if isinstance(future, Future):
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(func())
                except BaseException as exc:
                    future.set_exception(exc)
            return
        result, error = None, None
        try:
            result = func()
        except BaseException as exc:
            error = exc
        with self._lock:
            self._finished.append((future, result, error))
            wake = len(self._finished) == 1  # else the loop was woken already
        if wake:
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
                future.get_loop().call_soon_threadsafe(self._hand_back)

    def _hand_back(self) -> None:
        """On the loop: settle every future that finished since the last wake-up."""
        with self._lock:
            finished, self._finished = self._finished, []
        for future, result, error in finished:
            if future.cancelled():
                continue
            if error is None:
                future.set_result(result)
            else:
                future.set_exception(error)


def _cancel(future: asyncio.Future[Any] | Future[Any]) -> None:
    if isinstance(future, Future):
        future.cancel()
    else:
        future.get_loop().call_soon_threadsafe(future.cancel)


async def call(
    func: Callable[..., Any], /, *args: Any, executor: Executor | None = None, **kwargs: Any
) -> Any:
    """Call ``func``: awaited on the loop if it is ``async def``, else on ``executor``.

    The sync call runs in a copy of the current context. A sync callable that returns an
    awaitable (a ``functools.partial`` of a coroutine function) has it awaited too.
    """
    if _is_coroutine_function(func):
        return await func(*args, **kwargs)
    context = contextvars.copy_context()
    job = functools.partial(context.run, func, *args, **kwargs)
    result = await _on_thread(job, executor)
    if inspect.isawaitable(result):
        return await result
    return result


def _is_coroutine_function(func: Callable[..., Any]) -> bool:
    """:func:`inspect.iscoroutinefunction`, remembered per handler (it is not cheap)."""
    try:
        return _remembered_is_coroutine_function(func)
    except TypeError:  # an unhashable callable object
        return inspect.iscoroutinefunction(func)


@functools.lru_cache(maxsize=1024)  # handlers are few and long-lived
def _remembered_is_coroutine_function(func: Callable[..., Any]) -> bool:
    return inspect.iscoroutinefunction(func)


def is_stream(result: Any) -> bool:
    """True for a result that streams: a sync or async iterable other than text or a reply."""
    if isinstance(result, str):  # the usual result, before the slower ABC checks
        return False
    if isinstance(result, AsyncIterable):
        return True
    return isinstance(result, Iterable) and not isinstance(result, Reply | bytes | Mapping)


async def iterate(result: Any, *, executor: Executor | None = None) -> AsyncIterator[Any]:
    """Yield the items of a sync or async iterable; a sync ``next()`` runs on ``executor``."""
    if isinstance(result, AsyncIterable):
        async for item in result:
            yield item
        return
    iterator: Iterator[Any] = iter(result)
    step = functools.partial(contextvars.copy_context().run, next, iterator, _DONE)
    while True:
        item = await _on_thread(step, executor)
        if item is _DONE:
            return
        yield item


async def _on_thread(job: Callable[[], Any], executor: Executor | None) -> Any:
    if isinstance(executor, HandlerPool):
        return await executor.run(job)
    return await asyncio.get_running_loop().run_in_executor(executor, job)
