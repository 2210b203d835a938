"""WeCom's 5-second rule: run handlers under a deadline, hand late results on, defer others.

WeCom waits 5 seconds for the answer to a callback, then sends it again. A handler that
may be slow (an LLM, a database) therefore runs on another thread while the request
thread waits at most ``deadline`` seconds for it:

* finished in time: its result is the passive reply;
* still running at the deadline: the request is answered empty (WeCom is satisfied and
  does not retry) and, when the handler finishes, ``on_late`` gets its result, which the
  pipeline sends through the API (message/send, or an AI bot's ``response_url``);
* ``deferred=True`` handlers are not waited for at all.

Design: the hand-off is the whole cost of the deadline, so it is kept to what a thread
switch costs. :class:`Runner` keeps a bounded set of *lanes*, each a thread that sleeps
on a lock of its own; handing a job to an idle lane is a lock release, and waiting for
its result is a lock acquire with a timeout. No queue, future or condition object is
made per call (``ThreadPoolExecutor.submit(...).result(timeout)`` costs about twice as
much). Jobs run in a copy of the caller's :mod:`contextvars` context, so context
variables (``current_message``, Flask's app context) follow the handler. When every lane
is busy, :class:`~flask_wecom.errors.Busy` is raised and the pipeline answers 503, so
WeCom retries later: a bounded number of handler threads, never an unbounded queue.

An ``executor`` (any :class:`concurrent.futures.Executor`) may be given instead, as
bolt-python's listener runner takes one; the hand-off then costs what that executor's
``submit`` and ``Future.result`` cost.

Graceful shutdown: at interpreter exit (a gunicorn worker stopping on SIGTERM exits
normally once its requests are answered) every runner waits up to ``grace`` seconds for the
handlers still running on its threads (late replies, deferred handlers, AI-bot stream
producers), so their replies still go out; :meth:`Runner.drain` does the same on demand.

Imports nothing from any web framework.
"""

from __future__ import annotations

import _thread
import atexit
import contextvars
import logging
import threading
import time
import weakref
from collections.abc import Callable
from concurrent.futures import Executor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, Generic, TypeVar

from .errors import Busy

__all__ = ["LATE", "Runner"]

logger = logging.getLogger("flask_wecom")

T = TypeVar("T")


class _Late:
    """The type of :data:`LATE`."""

    def __repr__(self) -> str:
        return "LATE"


#: Returned by :meth:`Runner.run` when the job missed its deadline (it keeps running).
LATE = _Late()


class _Lane(Generic[T]):
    """One handler thread, woken for one job at a time."""

    __slots__ = ("_done", "_job", "_lock", "_on_late", "_result", "_runner", "_wake", "abandoned")

    def __init__(self, runner: Runner) -> None:
        self._runner = runner
        self._wake = _thread.allocate_lock()
        self._wake.acquire()
        self._done = _thread.allocate_lock()
        self._done.acquire()
        self._lock = _thread.allocate_lock()
        self._job: Callable[[], Any] | None = None
        self._on_late: Callable[[Any], None] | None = None
        self._result: tuple[bool, Any] = (True, None)
        self.abandoned = False
        threading.Thread(target=self._serve, name="flask-wecom-handler", daemon=True).start()

    def start(self, job: Callable[[], Any], on_late: Callable[[Any], None] | None) -> None:
        """Wake the lane's thread with ``job``."""
        self._job, self._on_late, self.abandoned = job, on_late, False
        self._wake.release()

    def wait(self, timeout: float) -> Any:
        """The job's result within ``timeout`` seconds, else :data:`LATE` (the lane then
        hands the result to ``on_late`` and returns itself to the runner when done)."""
        if not self._done.acquire(True, timeout):
            with self._lock:
                if not self._done.acquire(False):
                    self.abandoned = True
                    return LATE
        ok, value = self._result
        self._result = (True, None)
        self._runner._idle.append(self)
        if not ok:
            raise value
        return value

    def _serve(self) -> None:
        while True:
            self._wake.acquire()
            job, self._job = self._job, None
            try:
                self._result = (True, job() if job is not None else None)
            except BaseException as exc:  # handed to the waiting thread, raised there
                self._result = (False, exc)
            with self._lock:
                abandoned = self.abandoned
                if not abandoned:
                    self._done.release()
            if abandoned:
                self._finish_late()

    def _finish_late(self) -> None:
        ok, value = self._result
        self._result = (True, None)
        on_late, self._on_late = self._on_late, None
        try:
            if not ok:
                raise value
            if on_late is not None:
                on_late(value)
        except Exception:
            logger.exception("a handler that missed its deadline failed")
        finally:
            self._runner._idle.append(self)


class Runner:
    """Runs callback handlers under WeCom's deadline on a bounded set of threads.

    :param threads: the most handlers running at once (late and deferred ones included).
    :param executor: run jobs on this executor instead of the runner's own lanes.
    """

    def __init__(
        self, threads: int = 8, *, executor: Executor | None = None, grace: float = 25.0
    ) -> None:
        if threads < 1:
            raise ValueError("threads must be at least 1")
        self.threads = threads
        self.executor = executor
        #: Seconds to wait at exit for running handlers (gunicorn's graceful timeout is 30).
        self.grace = grace
        self._idle: list[_Lane[Any]] = []
        self._lanes = 0
        self._grow = threading.Lock()
        self._refused = 0
        _LIVING.add(self)

    @property
    def busy(self) -> int:
        """How many jobs are running on the runner's own threads."""
        return self._lanes - len(self._idle)

    def drain(self, timeout: float | None = None) -> bool:
        """Wait until no job runs on the runner's threads (at most ``timeout`` seconds,
        default :attr:`grace`); True if none is left."""
        deadline = time.monotonic() + (self.grace if timeout is None else timeout)
        while self.busy and time.monotonic() < deadline:
            time.sleep(0.01)
        if self.busy:
            logger.error(
                "%d handler(s) still running at shutdown; their replies are lost", self.busy
            )
        return not self.busy

    @property
    def refused(self) -> int:
        """How many jobs were refused because every thread was busy."""
        return self._refused

    def run(
        self,
        job: Callable[[], T],
        deadline: float,
        on_late: Callable[[T], None] | None = None,
    ) -> T | _Late:
        """Run ``job`` on another thread and wait for it at most ``deadline`` seconds.

        :returns: its result, or :data:`LATE` if it is still running (``on_late`` gets the
            result when it finishes; its errors are logged).
        :raises Busy: every thread is taken.
        """
        work = _in_context(job)
        if self.executor is not None:
            future = self.executor.submit(work)
            try:
                return future.result(timeout=deadline)
            except FutureTimeout:
                if on_late is not None:
                    future.add_done_callback(lambda done: _late(on_late, done.result))
                return LATE
        lane = self._lane()
        lane.start(work, on_late)
        return lane.wait(deadline)  # type: ignore[no-any-return]

    def defer(self, job: Callable[[], Any]) -> None:
        """Run ``job`` in the background; its errors are logged.

        :raises Busy: every thread is taken.
        """
        self.run(_logged(job), 0.0)

    def _lane(self) -> _Lane[Any]:
        try:
            return self._idle.pop()
        except IndexError:
            pass
        with self._grow:
            if self._lanes >= self.threads:
                self._refused += 1
                logger.warning("all %d handler threads are busy; refusing a job", self.threads)
                raise Busy(f"all {self.threads} handler threads are busy")
            self._lanes += 1
        return _Lane(self)


#: Every runner alive, drained at interpreter exit.
_LIVING: weakref.WeakSet[Runner] = weakref.WeakSet()


@atexit.register
def _drain_at_exit() -> None:
    for runner in list(_LIVING):
        runner.drain()


def _in_context(job: Callable[[], T]) -> Callable[[], T]:
    """``job`` bound to a copy of the current context (context variables follow it)."""
    context = contextvars.copy_context()
    return lambda: context.run(job)


def _logged(job: Callable[[], Any]) -> Callable[[], None]:
    def run_logged() -> None:
        try:
            job()
        except Exception:
            logger.exception("a deferred handler failed")

    return run_logged


def _late(on_late: Callable[[T], None], result: Callable[[], T]) -> None:
    try:
        on_late(result())
    except Exception:
        logger.exception("a handler that missed its deadline failed")
