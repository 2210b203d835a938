"""Receivers: a callback URL's handlers and what is done with their results.

A :class:`Receiver` is a :class:`~flask_wecom.router.Router` (the decorators
``@receiver.message``, ``.event``, ``.info_type``, ``.route``, ``.default``) plus the
policy of one kind of callback URL:

* :class:`Receiver`: a self-built app (自建应用). A ``str`` result is a text reply; a
  reply that misses the deadline is sent with message/send.
* :class:`~flask_wecom.aibot.BotReceiver`: an AI bot (智能机器人), JSON, streams.
* :class:`~flask_wecom.suite.SuiteReceiver`: a third-party suite's command URL, answered
  ``success``, keeping the suite_ticket.

The :class:`~flask_wecom.pipeline.Pipeline` runs them, the same way under every adapter
(WSGI, ASGI, Flask, the AI bot's long connection). No web imports.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import inspect
import logging
import types
from collections.abc import Callable, Mapping
from concurrent.futures import Executor
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, cast

from . import aio
from .envelope import EnvelopeFormat
from .messages import Message
from .replies import Reply, TextReply
from .router import Router, RuleMatch
from .stores import Store

if TYPE_CHECKING:
    from .client import WeComClient
    from .runner import Runner

__all__ = ["Call", "Deferrer", "ErrorHandler", "Receiver", "current_message", "handling"]

logger = logging.getLogger("flask_wecom")

ErrorHandler = Callable[[Message, Exception], Any]

_CURRENT: contextvars.ContextVar[Message] = contextvars.ContextVar("flask_wecom.message")


def handling(call: Call) -> AbstractContextManager[None]:
    """The context a handler runs in: ``current_message`` and the endpoint's scope.

    A transport keeps it around work that runs a handler's code later (a stream's chunks).
    """
    return _Handling(call)


class _Handling:
    """:func:`handling`'s context manager: a class, cheaper per callback than a generator."""

    __slots__ = ("_call", "_scope", "_token")

    def __init__(self, call: Call) -> None:
        self._call = call

    def __enter__(self) -> None:
        self._token = _CURRENT.set(self._call.message)
        try:
            self._scope = self._call.scope()
            self._scope.__enter__()
        except BaseException:
            _CURRENT.reset(self._token)
            raise

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        traceback: types.TracebackType | None,
    ) -> bool | None:
        try:
            return self._scope.__exit__(kind, exc, traceback)
        finally:
            _CURRENT.reset(self._token)


class _CurrentMessage:
    """A proxy to the message being handled (like ``flask.request``), in any framework."""

    def __getattr__(self, name: str) -> Any:
        try:
            message = _CURRENT.get()
        except LookupError:
            raise RuntimeError("current_message is only available inside a handler") from None
        return getattr(message, name)

    def __repr__(self) -> str:
        message = _CURRENT.get(None)
        return f"<current_message {type(message).__name__ if message else 'unbound'}>"


#: The message being handled, inside a handler and the code it calls.
current_message: Message = cast(Message, _CurrentMessage())


class Deferrer(Protocol):
    """Runs ``deferred=True`` handlers somewhere else than the web worker.

    The default runs them on the pipeline's runner. :class:`flask_wecom.rq.RQDeferrer`
    hands them to RQ workers, for deployments that outgrow one machine.
    """

    def defer(self, wecom_name: str, plaintext: bytes) -> None:
        """Arrange for the receiver named ``wecom_name`` to handle ``plaintext`` later."""
        ...


#: The context every handler of an endpoint runs in (Flask: the app context).
Scope = Callable[[], AbstractContextManager[Any]]


@dataclass(frozen=True)
class Call:
    """One verified callback, as a receiver's policy sees it."""

    #: The parsed message.
    message: Message
    #: The decrypted document.
    plaintext: bytes
    #: The endpoint's name (scopes stream state and store keys).
    endpoint: str
    #: The pipeline's store (dedup, streams, suite tickets, access tokens).
    store: Store
    #: Runs AI-bot stream producers (long-lived, apart from the handler threads).
    streams: Runner
    #: The endpoint's API client for late replies (message/send), if it has one.
    client: WeComClient | None = None
    #: The context handlers run in.
    scope: Scope = contextlib.nullcontext


class Receiver(Router):
    """The handlers of one callback URL and the policy of a self-built app (自建应用).

    Where it runs (deadline, API client, deferrer) is the endpoint's business
    (:class:`~flask_wecom.pipeline.Endpoint`), so one receiver may serve several apps.

    :param name: the receiver's name, for logs, metrics and deferrers (default
        :attr:`default_name`).
    """

    #: The reply envelope of this kind of callback URL.
    format: ClassVar[EnvelopeFormat] = "xml"
    #: A literal, unencrypted answer to every accepted callback ("" for passive replies).
    acknowledge: ClassVar[str] = ""
    #: Where this kind's settings are read (``WECOM_TOKEN`` ...), and its own defaults.
    config_prefix: ClassVar[str] = "WECOM_"
    preset: ClassVar[Mapping[str, Any]] = {}
    #: The settings this kind needs (a self-built app needs its CorpID).
    required: ClassVar[tuple[str, ...]] = ("TOKEN", "ENCODING_AES_KEY", "CORP_ID")
    #: Late and deferred replies go by message/send (which needs WECOM_SECRET, AGENT_ID).
    sends_late_replies_by_api: ClassVar[bool] = True

    #: The name when none is given (endpoint names must differ within a pipeline).
    default_name: ClassVar[str] = "wecom"

    def __init__(self, *, name: str | None = None) -> None:
        super().__init__()
        self.name = name or self.default_name
        self._error_handler: ErrorHandler | None = None

    def receive_ids(
        self, corp_ids: tuple[str, ...], suite_id: str
    ) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """The receive ids of URL verification (GET) and of callbacks (POST): the CorpIDs."""
        return corp_ids, corp_ids

    def errorhandler(self, handler: ErrorHandler) -> ErrorHandler:
        """Decorator: called as ``handler(message, exc)`` when a handler raises.

        Its return value is the reply (None for none). Without one, the error is
        logged and WeCom gets an empty answer.
        """
        self._error_handler = handler
        return handler

    # -- policy: each kind of receiver overrides what differs ---------------------------

    def before_handler(self, call: Call) -> Reply | None:
        """Runs before routing; a reply returned here answers at once (None: route)."""
        return None

    def to_reply(self, result: Any, call: Call) -> Reply | None:
        """Turn a handler's return value into a reply: a ``str`` becomes a text reply.

        :raises TypeError: the handler returned something that is not a reply.
        """
        if result is None or isinstance(result, Reply):
            return result
        if isinstance(result, str):
            return TextReply(result) if result else None
        raise TypeError(
            f"a WeCom handler must return str, a Reply or None, not {type(result).__name__}"
        )

    def deliver(self, call: Call, reply: Reply) -> None:
        """Send a late or deferred reply to the sender (发送应用消息, message/send)."""
        if call.client is None:
            raise RuntimeError(
                f"endpoint {call.endpoint!r} has a late reply but no API client: set its "
                "secret and agent id (WECOM_SECRET, WECOM_AGENT_ID) to send it by message/send"
            )
        call.client.send_reply(reply, to_user=call.message.from_user_name or "")

    # -- running --------------------------------------------------------------------------

    def invoke(self, found: RuleMatch, call: Call) -> Reply | None:
        """Run a handler on the call and turn its result into a reply (None: no reply).

        An ``async def`` handler runs to its end on an event loop of its own (this thread's),
        so a handler written for an ASGI server runs unchanged under WSGI.

        A handler error goes to the error handler, whose result is the reply; without
        one, or if it fails too, the error is logged and there is no reply.
        """
        with handling(call):
            try:
                result = found.call(call.message)
                if inspect.iscoroutine(result):  # an async def handler on a WSGI server
                    result = asyncio.run(result)
                return self.to_reply(result, call)
            except Exception as exc:
                return self._on_error(call, exc)

    async def ainvoke(
        self, found: RuleMatch, call: Call, executor: Executor | None = None
    ) -> Reply | None:
        """:meth:`invoke` on an event loop: :meth:`acall`, then the result as a reply (an
        error handler's unusable result is logged, as :meth:`invoke` does)."""
        with handling(call):
            result, from_error_handler = await self._acall(found, call, executor)
            try:
                return self.to_reply(result, call)
            except Exception as exc:
                if from_error_handler:
                    logger.error("the WeCom error handler failed", exc_info=exc)
                    return None
                return self._on_error(call, exc)

    async def acall(self, found: RuleMatch, call: Call, executor: Executor | None = None) -> Any:
        """Run a handler on an event loop and return its raw result (a transport that makes
        its own frames, such as the long connection, converts it).

        An ``async def`` handler is awaited on the loop; any other runs on ``executor``
        (never on the loop), in :func:`handling`'s context. A handler error goes to the
        error handler (run the same way), whose raw result is returned; without one, or if
        it fails too, the error is logged and the result is None.
        """
        with handling(call):
            result, _ = await self._acall(found, call, executor)
            return result

    async def _acall(
        self, found: RuleMatch, call: Call, executor: Executor | None
    ) -> tuple[Any, bool]:
        """:meth:`acall` inside :func:`handling`: the raw result, and whether it is the error
        handler's."""
        try:
            return (
                await aio.call(
                    found.rule.handler, call.message, *found.args, executor=executor, **found.kwargs
                ),
                False,
            )
        except Exception as exc:
            if self._error_handler is None:
                return self._on_error(call, exc), True  # logs it
            try:
                return await aio.call(
                    self._error_handler, call.message, exc, executor=executor
                ), True
            except Exception:
                logger.exception("the WeCom error handler failed")
                return None, True

    def _on_error(self, call: Call, exc: Exception) -> Reply | None:
        message = call.message
        if self._error_handler is None:
            logger.error(
                "handler for %s/%s failed",
                message.type,
                message.event or "-",
                exc_info=exc,
            )
            return None
        try:
            return self.to_reply(self._error_handler(message, exc), call)
        except Exception:
            logger.exception("the WeCom error handler failed")
            return None

    def deliver_late(self, call: Call, reply: Reply | None) -> None:
        """Deliver a late or deferred handler's reply; errors are logged, never raised."""
        if reply is None:
            return
        try:
            with call.scope():
                self.deliver(call, reply)
        except Exception:
            logger.exception(
                "could not send the late reply for %s/%s",
                call.message.type,
                call.message.event or "-",
            )

    def handle(self, call: Call) -> Reply | None:
        """Route and run the call at once, without deadline (deferred jobs, tests)."""
        early = self.before_handler(call)
        if early is not None:
            return early
        found = self.resolve(call.message)
        return None if found is None else self.invoke(found, call)
