"""The Flask extension: configuration, route decorators, blueprints and reply handling.

A complete app::

    from flask import Flask
    from flask_wecom import WeCom

    app = Flask(__name__)
    app.config.from_prefixed_env()          # WECOM_TOKEN, WECOM_ENCODING_AES_KEY, WECOM_CORP_ID
    wecom = WeCom(app)

    @wecom.message("text")
    def echo(message):
        return f"echo: {message.content}"

The extension wraps ``app.wsgi_app`` in :class:`~flask_wecom.middleware.WeComMiddleware`
(it never patches Flask), so verification, decryption, refusals and reply
encryption happen there; this module only routes the parsed message to a handler
and turns the handler's return value into a plaintext reply. It is the only
module that imports Flask.
"""

from __future__ import annotations

import contextvars
import json
import logging
import secrets
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar, cast

import click
from flask import Blueprint, Flask, Response, copy_current_request_context, current_app, request
from flask.blueprints import BlueprintSetupState
from flask.cli import AppGroup
from werkzeug.local import LocalProxy

from .client import WeComClient, post_response_url
from .crypto import WeComCrypto
from .dedup import Deduplicator
from .errors import AESKeyError, ReplyError, WeComError
from .menu import load_menu
from .messages import Message
from .middleware import DEFAULT_MAX_BODY, DEFAULT_TOLERANCE, Endpoint, OutcomeHook, WeComMiddleware
from .replies import Reply, StreamReply, TemplateCardReply, TextReply, WelcomeTextReply
from .router import Handler, Router, RuleMatch
from .stores import Store, store_from_url
from .streams import StreamStore

__all__ = ["AIBot", "Deferrer", "WeCom", "WeComSuite", "current_message"]

logger = logging.getLogger("flask_wecom")

H = TypeVar("H", bound=Handler)
ErrorHandler = Callable[[Message, Exception], Any]

#: The message being handled, inside a handler (like ``flask.request``).
current_message: Message = cast(Message, LocalProxy(lambda: request.environ["wecom.message"]))

#: Per-endpoint keys without a default (after the prefix, e.g. ``WECOM_TOKEN``).
REQUIRED_CONFIG = ("TOKEN", "ENCODING_AES_KEY", "CORP_ID")
#: Per-endpoint keys with their defaults, read with each instance's ``config_prefix``.
CONFIG_DEFAULTS: Mapping[str, Any] = {
    "PATH": "/wecom",
    "FORMAT": "xml",
    "PREVIOUS_CREDENTIALS": (),
    "DEADLINE": 4.0,
    "SECRET": "",
    "AGENT_ID": "",
    "API_BASE_URL": "https://qyapi.weixin.qq.com",
}
#: App-wide keys with their defaults, always read as ``WECOM_<KEY>``.
APP_CONFIG_DEFAULTS: Mapping[str, Any] = {
    "MAX_BODY": DEFAULT_MAX_BODY,
    "TOLERANCE": DEFAULT_TOLERANCE,
    "DEDUP": True,
    "REDIS_URL": "",
    "DEDUP_TTL": 600.0,
    "DEDUP_LEASE": 3.0,
    "DEDUP_WAIT": 4.0,
    "DEDUP_WRITE_BEHIND": None,
    "THREADS": 8,
}
_APP_PREFIX = "WECOM_"


class Deferrer(Protocol):
    """Runs ``deferred=True`` handlers somewhere else than the web worker.

    The default runs them on the app's bounded thread pool. :class:`flask_wecom.rq.RQDeferrer`
    hands them to RQ workers on the same Redis, for deployments that outgrow one machine.
    """

    def defer(self, wecom_name: str, plaintext: bytes) -> None:
        """Arrange for ``WeCom`` instance ``wecom_name`` to handle ``plaintext`` later."""
        ...


@dataclass
class _AppState:
    """What one Flask app knows about WeCom: its middleware, store, pool and agents."""

    middleware: WeComMiddleware
    #: The dedup store, also caching access tokens (memory, or Redis with WECOM_REDIS_URL).
    store: Store
    #: Runs handlers under the deadline, and deferred handlers.
    pool: ThreadPoolExecutor
    #: Gathers AI-bot stream chunks (long-running, so apart from the handler pool).
    stream_pool: ThreadPoolExecutor
    mounted: dict[str, WeCom] = field(default_factory=dict)
    settings: dict[str, dict[str, Any]] = field(default_factory=dict)
    clients: dict[str, WeComClient] = field(default_factory=dict)


class WeCom(Router):
    """WeCom (企业微信) callbacks for a Flask app: one callback URL and its handlers.

    Routing is :class:`~flask_wecom.router.Router`'s: ``@wecom.message(...)``,
    ``@wecom.event(...)``, ``@wecom.info_type(...)``, ``@wecom.route(...)`` and
    ``@wecom.default`` register handlers; a ``deferred=True`` handler runs after WeCom
    got its empty answer and its result is sent with message/send.

    :param app: the app, or None to call :meth:`init_app` later (app factories).
    :param name: the blueprint name (default :attr:`default_name`); give each instance
        its own when an app serves several agents.
    :param config_prefix: where settings are read from in ``app.config`` (default
        :attr:`default_config_prefix`): ``WECOM_`` gives ``WECOM_TOKEN``, ...
    :param hooks: outcome hooks for the middleware (metrics, see :class:`Outcome`).
    :param deferrer: where ``deferred=True`` handlers run (default: a thread pool
        in the web worker; see :mod:`flask_wecom.rq`).
    :param options: settings given directly, by their lower-case key without the
        prefix (``token=..., corp_id=..., path=...``); they win over ``app.config``.
    """

    def __init__(
        self,
        app: Flask | None = None,
        *,
        name: str | None = None,
        config_prefix: str | None = None,
        hooks: Iterable[OutcomeHook] = (),
        deferrer: Deferrer | None = None,
        **options: Any,
    ) -> None:
        known = {*REQUIRED_CONFIG, *self.extra_required, *CONFIG_DEFAULTS, *APP_CONFIG_DEFAULTS}
        unknown = {k.upper() for k in options} - known
        if unknown:
            raise TypeError(f"unknown WeCom options: {', '.join(sorted(unknown))}")
        self.name = name or self.default_name
        self.config_prefix = config_prefix or self.default_config_prefix
        self.options = {k.upper(): v for k, v in options.items()}
        self.hooks = list(hooks)
        #: Where ``deferred=True`` handlers run; None: the app's thread pool.
        self.deferrer = deferrer
        super().__init__()
        self._error_handler: ErrorHandler | None = None
        self.blueprint = Blueprint(self.name, __name__)
        self.blueprint.record(self._mount)
        if app is not None:
            self.init_app(app)

    # -- set-up ---------------------------------------------------------------------------

    def init_app(self, app: Flask) -> None:
        """Register the callback URL (``WECOM_PATH``) on ``app``.

        :raises RuntimeError: required configuration is missing or malformed, or
            this instance is already registered on ``app``.
        """
        state: _AppState | None = app.extensions.get("wecom")
        if (state and self.name in state.mounted) or self.name in app.blueprints:
            raise RuntimeError(
                f"a WeCom named {self.name!r} is already registered on this app; "
                "give a second instance its own name=..."
            )
        app.register_blueprint(self.blueprint)

    #: The blueprint name and ``app.config`` prefix when none is given.
    default_name = "wecom"
    default_config_prefix = "WECOM_"
    #: Defaults that differ for this kind of endpoint (the AI bot's JSON, for instance).
    preset: Mapping[str, Any] = {}
    #: Settings this kind of endpoint needs besides REQUIRED_CONFIG.
    extra_required: tuple[str, ...] = ()
    #: A literal answer to every accepted callback instead of a reply ("" for replies).
    acknowledge = ""

    def settings(self, app: Flask) -> dict[str, Any]:
        """The effective settings for ``app``: options, then ``app.config``, then defaults."""
        found: dict[str, Any] = {}
        for prefix, defaults in (
            (
                self.config_prefix,
                {
                    **dict.fromkeys((*REQUIRED_CONFIG, *self.extra_required)),
                    **CONFIG_DEFAULTS,
                    **self.preset,
                },
            ),
            (_APP_PREFIX, APP_CONFIG_DEFAULTS),
        ):
            for key, default in defaults.items():
                if default is not None:
                    app.config.setdefault(prefix + key, default)
                found[key] = app.config.get(prefix + key)
        found.update(self.options)
        if isinstance(found["DEDUP"], str):  # from the environment: "0", "false", "off" ...
            found["DEDUP"] = found["DEDUP"].strip().lower() in ("1", "true", "yes", "on")
        if isinstance(found["PREVIOUS_CREDENTIALS"], str):  # from the environment: JSON
            found["PREVIOUS_CREDENTIALS"] = json.loads(found["PREVIOUS_CREDENTIALS"] or "[]")
        required = (*REQUIRED_CONFIG, *self.extra_required)
        missing = [self.config_prefix + k for k in required if found[k] is None]
        if missing:
            raise RuntimeError(
                f"WeCom {self.name!r} needs {', '.join(missing)}: set them in app.config "
                "(for example from environment variables of the same names) or pass them to "
                "the constructor. They are on the callback settings page (接收消息服务器配置)."
            )
        return found

    def receive_ids(self, settings: Mapping[str, Any]) -> list[str]:
        """The receive ids a callback may carry: ``CORP_ID``, a list or comma-separated ids."""
        corp_ids = settings["CORP_ID"]
        if isinstance(corp_ids, str):
            return [part.strip() for part in corp_ids.split(",")] if corp_ids else [""]
        return list(corp_ids)

    def _credentials(self, settings: Mapping[str, Any]) -> list[WeComCrypto]:
        sets = [settings, *settings["PREVIOUS_CREDENTIALS"]]
        receive_ids = self.receive_ids(settings)
        try:
            return [
                WeComCrypto(
                    s.get("TOKEN") or s.get("token"),
                    s.get("ENCODING_AES_KEY") or s.get("encoding_aes_key"),
                    receive_ids,
                )
                for s in sets
            ]
        except (AESKeyError, ValueError) as exc:
            raise RuntimeError(
                f"WeCom {self.name!r}: {self.config_prefix}* settings: {exc}"
            ) from exc

    def _mount(self, state: BlueprintSetupState) -> None:
        """Blueprint hook: add this endpoint to the app's middleware, installing it once."""
        app = cast(Flask, state.app)
        settings = self.settings(app)
        path = (state.url_prefix or "").rstrip("/") + settings["PATH"]
        endpoint = Endpoint(
            path,
            self._credentials(settings),
            settings["FORMAT"],
            name=self.name,
            acknowledge=self.acknowledge,
        )
        app_state: _AppState | None = app.extensions.get("wecom")
        if app_state is None:
            app_state = app.extensions["wecom"] = self._install(app, endpoint, settings)
        else:
            app_state.middleware.add_endpoint(endpoint)
            app_state.middleware.hooks.extend(self.hooks)
        app_state.mounted[self.name] = self
        app_state.settings[self.name] = settings
        app.add_url_rule(
            path,
            f"{self.name}.callback",
            self._view,
            methods=["POST"],
            strict_slashes=True,
            merge_slashes=False,  # "//wecom" is not the endpoint the middleware guards
        )

    def _install(self, app: Flask, endpoint: Endpoint, settings: Mapping[str, Any]) -> _AppState:
        """Wrap ``app.wsgi_app`` in the middleware (once per app) and add ``flask wecom``."""
        store = store_from_url(settings["REDIS_URL"])
        dedup = settings["DEDUP"] and Deduplicator(
            store,
            ttl=float(settings["DEDUP_TTL"]),
            lease=float(settings["DEDUP_LEASE"]),
            wait=float(settings["DEDUP_WAIT"]),
            write_behind=(
                None
                if settings["DEDUP_WRITE_BEHIND"] in (None, "")
                else float(settings["DEDUP_WRITE_BEHIND"])
            ),
        )
        middleware = WeComMiddleware(
            app.wsgi_app,
            endpoints=[endpoint],
            max_body=int(settings["MAX_BODY"]),
            tolerance=float(settings["TOLERANCE"]),
            hooks=self.hooks,
            dedup=dedup,
        )
        app.wsgi_app = middleware  # type: ignore[method-assign]  # Flask's documented way
        app.cli.add_command(_cli_group())
        threads = int(settings["THREADS"])
        pool = ThreadPoolExecutor(threads, thread_name_prefix="flask-wecom")
        streams = ThreadPoolExecutor(threads, thread_name_prefix="flask-wecom-stream")
        return _AppState(middleware, store, pool, streams)

    # -- decorators: message, event, info_type, route and default come from Router --

    def errorhandler(self, handler: ErrorHandler) -> ErrorHandler:
        """Decorator: called as ``handler(message, exc)`` when a handler raises.

        Its return value is the reply (None for none). Without one, the error is
        logged and WeCom gets an empty 200.
        """
        self._error_handler = handler
        return handler

    # -- handling -------------------------------------------------------------------------

    def handle(self, message: Message) -> Reply | None:
        """Run the matching handler and turn its result into a reply (None: no reply).

        A ``str`` result becomes a :class:`~flask_wecom.replies.TextReply`. If the
        handler raises (or returns something else), the error handler decides the
        reply; without one the error is logged and there is no reply.
        """
        found = self.resolve(message)
        return None if found is None else self._run(found, message)

    def _run(self, found: RuleMatch, message: Message) -> Reply | None:
        try:
            return self.to_reply(found.call(message), message)
        except Exception as exc:
            if self._error_handler is None:
                logger.exception("handler for %s/%s failed", message.type, message.event)
                return None
            try:
                return self.to_reply(self._error_handler(message, exc), message)
            except Exception:
                logger.exception("the WeCom error handler failed")
                return None

    def to_reply(self, result: Any, message: Message) -> Reply | None:
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

    def _view(self) -> Response:
        message: Message | None = request.environ.get("wecom.message")
        if message is None:  # the middleware did not verify this request (another path form)
            return Response(b"not found\n", 404, content_type="text/plain; charset=utf-8")
        early = self.before_handler(message)
        if early is not None:
            return self._passive(early, message)
        found = self.resolve(message)
        if found is None:
            return Response(b"", 200)
        app = _current_flask_app()
        state: _AppState = app.extensions["wecom"]
        deadline = float(state.settings[self.name]["DEADLINE"])
        if found.rule.deferred and self.deferrer is not None:
            self.deferrer.defer(self.name, request.environ["wecom.plaintext"])
            return Response(b"", 200)
        if not found.rule.deferred and deadline <= 0:
            return self._passive(self._run(found, message), message)
        # The handler thread shares this request's contexts (Flask keeps them in context
        # variables): a copy of the context costs nothing, unlike copying the request.
        future = state.pool.submit(contextvars.copy_context().run, self._run, found, message)
        if not found.rule.deferred:
            try:
                return self._passive(future.result(timeout=deadline), message)
            except FutureTimeout:
                logger.warning(
                    "handler for %s/%s missed the %.1f s deadline; its reply goes by message/send",
                    message.type,
                    message.event,
                    deadline,
                )
        future.add_done_callback(lambda done: self.send_later(app, message, done.result()))
        return Response(b"", 200)

    def before_handler(self, message: Message) -> Reply | None:
        """Runs before routing; a reply returned here answers at once (None: route as usual)."""
        return None

    def _passive(self, reply: Reply | None, message: Message) -> Response:
        """The plaintext passive reply (the middleware encrypts it), or an empty 200."""
        if reply is None:
            return Response(b"", 200)
        try:
            body = reply.render(message)
        except ReplyError:
            logger.exception(
                "reply refused for %s/%s; answering empty", message.type, message.event
            )
            return Response(b"", 200)
        return Response(body, 200, content_type="text/plain; charset=utf-8")

    def client(self, app: Flask | None = None) -> WeComClient:
        """The WeCom API client of this agent (``WECOM_SECRET``, ``WECOM_AGENT_ID``), made once.

        Its access token is cached in the app's store, so with ``WECOM_REDIS_URL``
        every worker and host shares one token.
        """
        app = app or _current_flask_app()
        state: _AppState = app.extensions["wecom"]
        if self.name not in state.clients:
            settings = state.settings[self.name]
            if not settings["SECRET"] or not settings["AGENT_ID"]:
                raise RuntimeError(
                    f"WeCom {self.name!r} needs {self.config_prefix}SECRET and "
                    f"{self.config_prefix}AGENT_ID to call the WeCom API (发送应用消息)"
                )
            state.clients[self.name] = WeComClient(
                settings["CORP_ID"],
                settings["SECRET"],
                agent_id=int(settings["AGENT_ID"]),
                base_url=settings["API_BASE_URL"],
                store=state.store,
            )
        return state.clients[self.name]

    def send_later(self, app: Flask, message: Message, reply: Reply | None) -> None:
        """Deliver a late or deferred handler's reply; errors are logged, never raised."""
        if reply is None:
            return
        try:
            with app.app_context():
                self.deliver(app, message, reply)
        except Exception:
            logger.exception("could not send the late reply for %s/%s", message.type, message.event)

    def deliver(self, app: Flask, message: Message, reply: Reply) -> None:
        """Send ``reply`` to the sender outside the callback (发送应用消息, message/send)."""
        self.client(app).send_reply(reply, to_user=message.from_user_name or "")


class AIBot(WeCom):
    """An AI bot (智能机器人) in API mode: JSON callbacks, receive id ``""``, stream replies.

    Configured like :class:`WeCom` but under ``WECOM_AIBOT_`` (``WECOM_AIBOT_TOKEN``,
    ``WECOM_AIBOT_ENCODING_AES_KEY``; ``WECOM_AIBOT_PATH`` defaults to ``/aibot``).
    A handler may return:

    * a ``str``: the whole answer (a finished stream; the welcome text for ``enter_chat``);
    * an iterator or generator of text chunks (and
      :class:`~flask_wecom.replies.StreamImage` objects): the first callback is answered
      at once with a stream id, the chunks are gathered in the background, and every
      refresh callback gets all the content so far, until the iterator ends;
    * any bot reply object, or None.

    Stream state lives in the app's store (Redis with ``WECOM_REDIS_URL``), so a refresh
    that lands on another worker or host is answered correctly. Late replies go to the
    message's ``response_url`` (:meth:`respond`).
    """

    default_name = "aibot"
    default_config_prefix = "WECOM_AIBOT_"
    preset: Mapping[str, Any] = {"FORMAT": "json", "CORP_ID": "", "PATH": "/aibot"}

    def streams(self, app: Flask | None = None) -> StreamStore:
        """The stream states of this app (in its store)."""
        app = app or _current_flask_app()
        return StreamStore(app.extensions["wecom"].store)

    def before_handler(self, message: Message) -> Reply | None:
        """Stream refresh callbacks (流式消息刷新) are answered from the stream state."""
        if message.is_aibot and message.type == "stream":
            stream = message.raw.get("stream") or {}
            return self.streams().snapshot(str(stream.get("id", "")))
        return None

    def to_reply(self, result: Any, message: Message) -> Reply | None:
        """A ``str`` is a finished stream (welcome text for enter_chat); an iterator streams."""
        if isinstance(result, str):
            if not result:
                return None
            if message.event == "enter_chat":
                return WelcomeTextReply(result)
            return StreamReply(secrets.token_urlsafe(16), result, finish=True)
        if isinstance(result, Iterable) and not isinstance(result, Reply | bytes | Mapping):
            app = _current_flask_app()
            streams = self.streams(app)
            stream_id = streams.start()
            state: _AppState = app.extensions["wecom"]
            state.stream_pool.submit(copy_current_request_context(streams.run), stream_id, result)
            return StreamReply(stream_id)
        return super().to_reply(result, message)

    def deliver(self, app: Flask, message: Message, reply: Reply) -> None:
        """A late bot reply goes to the message's response_url as markdown (or a card)."""
        self.respond(message, reply)

    def respond(self, message: Message, reply: Reply | str) -> None:
        """Actively reply to ``message`` through its ``response_url`` (once, within an hour).

        A ``str`` or a text/stream reply is sent as markdown; a template card as a card.

        :raises ValueError: the message has no response_url, or the reply has no active form.
        :raises APIError: WeCom refused it (e.g. the response_url was used already).
        """
        url = getattr(message, "response_url", None)
        if not url:
            raise ValueError("this message has no response_url to answer")
        payload: dict[str, Any]
        if isinstance(reply, TemplateCardReply):
            payload = {"msgtype": "template_card", "template_card": reply.card}
        else:
            content = reply if isinstance(reply, str) else getattr(reply, "content", None)
            if not isinstance(content, str):
                raise ValueError(f"{type(reply).__name__} cannot be sent to response_url")
            payload = {"msgtype": "markdown", "markdown": {"content": content}}
        post_response_url(url, payload)


def _current_flask_app() -> Flask:
    """The app behind ``current_app``, safe to keep after the request (threads, callbacks)."""
    return cast(Flask, current_app._get_current_object())  # type: ignore[attr-defined]


def _cli_group() -> AppGroup:
    """``flask wecom ...`` commands."""
    group = AppGroup("wecom", help="WeCom (企业微信) callback endpoints and custom menus.")

    @group.command("endpoints")
    @click.option("--base-url", default="https://your.domain", help="The public URL of this app.")
    def endpoints(base_url: str) -> None:
        """Print each callback URL to paste into the WeCom admin console."""
        state: _AppState = current_app.extensions["wecom"]
        for endpoint in state.middleware.endpoints:
            receive_ids = ", ".join(repr(r) for c in endpoint.credentials for r in c.receive_ids)
            click.echo(
                f"{endpoint.name}: {base_url.rstrip('/')}{endpoint.path}  "
                f"({endpoint.format}, {len(endpoint.credentials)} credential set(s), "
                f"receive id {receive_ids})"
            )

    menu = AppGroup("menu", help="The agent's custom menu (自定义菜单).")
    group.add_command(menu)
    agent = click.option("--agent", "name", default="wecom", help="Which WeCom instance (name=).")

    @menu.command("push")
    @click.argument("path", type=click.Path(exists=True, dir_okay=False))
    @agent
    def push(path: str, name: str) -> None:
        """Validate the menu in PATH (JSON or YAML) and create it (menu/create)."""
        with _api_errors():
            _client_of(name).menu_create(load_menu(path))
        click.echo(f"menu from {path} pushed")

    @menu.command("show")
    @agent
    def show(name: str) -> None:
        """Print the current menu as JSON (menu/get)."""
        with _api_errors():
            click.echo(json.dumps(_client_of(name).menu_get(), ensure_ascii=False, indent=2))

    @menu.command("delete")
    @agent
    def delete(name: str) -> None:
        """Remove the menu (menu/delete)."""
        with _api_errors():
            _client_of(name).menu_delete()
        click.echo("menu deleted")

    return group


def _client_of(name: str) -> WeComClient:
    state: _AppState = current_app.extensions["wecom"]
    if name not in state.mounted:
        raise click.UsageError(f"no WeCom instance named {name!r}; have {sorted(state.mounted)}")
    return state.mounted[name].client()


@contextmanager
def _api_errors() -> Iterator[None]:
    """Turn configuration and API errors into a clean CLI error (exit code 1)."""
    try:
        yield
    except (WeComError, RuntimeError) as exc:
        raise click.ClickException(str(exc)) from exc


class WeComSuite(WeCom):
    """A third-party app's command callback URL (第三方应用 指令回调), keyed by InfoType.

    Configured under ``WECOM_SUITE_``: ``TOKEN``, ``ENCODING_AES_KEY``, ``SUITE_ID`` and
    ``CORP_ID`` (the provider's own CorpID). WeCom verifies the URL (GET) with the
    provider's CorpID as receive id and signs command callbacks (POST) with the
    SuiteID, so both are accepted. Every accepted callback is answered with the plain
    text ``success``, as the docs require, whatever the handlers return.

    The latest ``suite_ticket`` (pushed every 10 minutes) is stored in the app's store
    before any handler runs; read it with :meth:`suite_ticket`. Handle the rest with
    ``@suite.info_type("create_auth")`` (also change_auth, cancel_auth,
    reset_permanent_code, change_contact, ...).
    """

    default_name = "suite"
    default_config_prefix = "WECOM_SUITE_"
    preset: Mapping[str, Any] = {"PATH": "/suite"}
    extra_required = ("SUITE_ID",)
    acknowledge = "success"
    #: How long a suite_ticket is kept: WeCom's tickets are valid 30 minutes.
    ticket_ttl = 1800.0

    def receive_ids(self, settings: Mapping[str, Any]) -> list[str]:
        """The SuiteID (command callbacks) and the provider's CorpID (URL verification)."""
        return [settings["SUITE_ID"], *super().receive_ids(settings)]

    def _ticket_key(self, app: Flask) -> str:
        return f"suite_ticket:{app.extensions['wecom'].settings[self.name]['SUITE_ID']}"

    def before_handler(self, message: Message) -> Reply | None:
        """Keep the latest suite_ticket in the store, then route as usual."""
        ticket = getattr(message, "suite_ticket", None)
        if message.info_type == "suite_ticket" and ticket:
            app = _current_flask_app()
            app.extensions["wecom"].store.set(
                self._ticket_key(app), ticket.encode(), self.ticket_ttl
            )
        return None

    def suite_ticket(self, app: Flask | None = None) -> str | None:
        """The latest suite_ticket WeCom pushed (None if none in the last 30 minutes)."""
        app = app or _current_flask_app()
        value = app.extensions["wecom"].store.get(self._ticket_key(app))
        return None if value is None else bytes(value).decode()
