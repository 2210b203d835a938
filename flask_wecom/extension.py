"""The Flask extension: ``WECOM_*`` config, ``init_app``, blueprints, decorators, commands.

A complete app::

    from flask import Flask
    from flask_wecom import WeCom

    def create_app(config=None):
        app = Flask(__name__)
        app.config.from_prefixed_env()       # WECOM_TOKEN, WECOM_ENCODING_AES_KEY, WECOM_CORP_ID
        app.config.update(config or {})
        wecom.init_app(app)
        return app

    wecom = WeCom()

    @wecom.message("text")
    def echo(message):
        return f"echo: {message.content}"

This module only translates: settings are read once into frozen objects
(:mod:`flask_wecom.settings`), each instance becomes an
:class:`~flask_wecom.pipeline.Endpoint` of one
:class:`~flask_wecom.middleware.WeComMiddleware` wrapping ``app.wsgi_app`` (never
patching Flask), and handlers run in the app context. Routing, the deadline, dedup,
streams and suite acknowledgements are the framework-free core's
(:mod:`flask_wecom.pipeline`, :mod:`flask_wecom.aibot`, :mod:`flask_wecom.suite`). It is
the only module that imports Flask.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, cast

import click
from flask import Blueprint, Flask, current_app
from flask.blueprints import BlueprintSetupState
from flask.cli import AppGroup

from .aibot import BotReceiver
from .client import WeComClient
from .errors import ConfigError, WeComError
from .menu import load_menu
from .messages import parse_message
from .middleware import WeComMiddleware
from .pipeline import Endpoint, OutcomeHook
from .receivers import Deferrer, Receiver, current_message
from .settings import (
    APP_DEFAULTS,
    ENDPOINT_DEFAULTS,
    REQUIRED,
    AppSettings,
    EndpointSettings,
    app_differences,
    read_app_settings,
    read_settings,
    uses_webhook,
)
from .stores import Store
from .suite import SuiteReceiver
from .wiring import build_endpoint, build_pipeline

__all__ = ["AIBot", "Deferrer", "WeCom", "WeComSuite", "current_message"]

logger = logging.getLogger("flask_wecom")


@dataclass
class _AppState:
    """What one Flask app knows about WeCom: its middleware and mounted instances."""

    middleware: WeComMiddleware
    app_settings: AppSettings
    mounted: dict[str, WeCom] = field(default_factory=dict)
    settings: dict[str, EndpointSettings] = field(default_factory=dict)
    endpoints: dict[str, Endpoint] = field(default_factory=dict)

    @property
    def store(self) -> Store:
        """The app's store (memory, or Redis with ``WECOM_REDIS_URL``)."""
        return self.middleware.pipeline.store


class WeCom(Receiver):
    """WeCom (企业微信) callbacks for a Flask app: one callback URL and its handlers.

    Routing is :class:`~flask_wecom.router.Router`'s: ``@wecom.message(...)``,
    ``@wecom.event(...)``, ``@wecom.info_type(...)``, ``@wecom.route(...)`` and
    ``@wecom.default`` register handlers; a ``deferred=True`` handler runs after WeCom
    got its empty answer and its result is sent with message/send. Handlers run in the
    app context (``current_app``, extensions), not in a request context.

    :param app: the app, or None to call :meth:`init_app` later (app factories).
    :param name: the blueprint and endpoint name (default ``default_name``); give
        each instance its own when an app serves several agents.
    :param config_prefix: where settings are read from in ``app.config`` (default
        :attr:`~flask_wecom.receivers.Receiver.config_prefix`): ``WECOM_`` gives
        ``WECOM_TOKEN``, ...
    :param hooks: outcome hooks (metrics, see :class:`~flask_wecom.pipeline.Outcome`).
    :param deferrer: where ``deferred=True`` handlers run (default: the app's handler
        threads; see :mod:`flask_wecom.rq`).
    :param options: settings given directly, by their lower-case key without the prefix
        (``token=..., corp_id=..., path=...``); they win over ``app.config``.
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
        known = {*REQUIRED, "SUITE_ID", *ENDPOINT_DEFAULTS, *APP_DEFAULTS}
        unknown = {k.upper() for k in options} - known
        if unknown:
            raise TypeError(f"unknown WeCom options: {', '.join(sorted(unknown))}")
        super().__init__(name=name)
        self.prefix = config_prefix or self.config_prefix
        self.options = {k.upper(): v for k, v in options.items()}
        self.hooks = list(hooks)
        #: Where ``deferred=True`` handlers run; None: the app's handler threads.
        self.deferrer = deferrer
        self.blueprint = Blueprint(self.name, __name__)
        self.blueprint.record(self._mount)
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Mount the callback URL (``WECOM_PATH``) on ``app``.

        :raises ConfigError: a setting is missing or malformed (the message names it).
        :raises RuntimeError: this instance's name is already registered on ``app``.
        """
        state: _AppState | None = app.extensions.get("wecom")
        if (state and self.name in state.mounted) or self.name in app.blueprints:
            raise RuntimeError(
                f"a WeCom named {self.name!r} is already registered on this app; "
                "give a second instance its own name=..."
            )
        app.register_blueprint(self.blueprint)

    def settings(self, app: Flask | None = None) -> EndpointSettings:
        """This instance's settings on ``app`` (default: the current app), read once.

        :raises RuntimeError: it has no callback URL (an AI bot on the long connection only).
        """
        state = _state(app)
        self._check_webhook(state)
        return state.settings[self.name]

    def _check_webhook(self, state: _AppState) -> None:
        if self.name not in state.settings:
            raise RuntimeError(
                f"{self.name!r} has no callback URL on this app (an AI bot configured for the "
                f"long connection only: no {self.prefix}TOKEN or {self.prefix}ENCODING_AES_KEY), "
                "so it has no webhook settings or API client"
            )

    def _mount(self, setup: BlueprintSetupState) -> None:
        """Blueprint hook: add this endpoint to the app's middleware, installing it once."""
        app = cast(Flask, setup.app)
        keys: dict[str, Any] = {
            "options": self.options,
            "preset": self.preset,
            "required": self.required,
        }
        webhook = uses_webhook(
            app.config, self.prefix, longconn=isinstance(self, BotReceiver), **keys
        )
        if webhook:
            settings, app_settings = read_settings(app.config, self.prefix, **keys)
        else:  # an AI bot over the long connection only (flask-wecom longconn): no URL
            app_settings = read_app_settings(app.config, options=self.options)
        state: _AppState | None = app.extensions.get("wecom")
        if state is None:
            middleware = WeComMiddleware(app.wsgi_app, pipeline=build_pipeline(app_settings))
            app.wsgi_app = middleware  # type: ignore[method-assign]  # Flask's documented way
            app.cli.add_command(_cli_group())
            state = app.extensions["wecom"] = _AppState(middleware, app_settings)
        elif differences := app_differences(state.app_settings, app_settings):
            raise ConfigError(
                ", ".join(differences),
                f"given to WeCom {self.name!r} differs from the app's, which the first "
                "instance installed; app-wide settings belong in app.config",
            )
        state.mounted[self.name] = self
        if not webhook:
            return
        endpoint = build_endpoint(
            self,
            settings,
            state.store,
            path_prefix=setup.url_prefix or "",
            deferrer=self.deferrer,
            scope=app.app_context,
            response_url_origins=app_settings.response_url_origins,
        )
        state.middleware.add_endpoint(endpoint)
        state.middleware.hooks.extend(self.hooks)
        state.settings[self.name] = settings
        state.endpoints[self.name] = endpoint

    def client(self, app: Flask | None = None) -> WeComClient:
        """The WeCom API client of this agent (``WECOM_SECRET``, ``WECOM_AGENT_ID``).

        Its access token is cached in the app's store, so with ``WECOM_REDIS_URL``
        every worker and host shares one token.

        :raises RuntimeError: the secret or agent id is not configured, or it has no callback
            URL (an AI bot on the long connection only).
        """
        state = _state(app)
        self._check_webhook(state)
        client = state.endpoints[self.name].client
        if client is None:
            raise RuntimeError(
                f"WeCom {self.name!r} needs {self.prefix}SECRET and "
                f"{self.prefix}AGENT_ID to call the WeCom API (发送应用消息)"
            )
        return client

    def run_deferred(self, app: Flask, plaintext: bytes) -> None:
        """Handle a deferred callback now (in a worker process) and send its reply."""
        state = _state(app)
        endpoint = state.endpoints[self.name]
        call = state.middleware.pipeline.call_for(endpoint, parse_message(plaintext), plaintext)
        self.deliver_late(call, self.handle(call))


class AIBot(WeCom, BotReceiver):
    """An AI bot (智能机器人) in API mode: JSON callbacks, receive id ``""``, stream replies.

    Configured like :class:`WeCom` but under ``WECOM_AIBOT_`` (``WECOM_AIBOT_TOKEN``,
    ``WECOM_AIBOT_ENCODING_AES_KEY``; ``WECOM_AIBOT_PATH`` defaults to ``/aibot``).
    Handlers return text, bot replies, or an iterator to stream
    (:class:`~flask_wecom.aibot.BotReceiver`). Late replies go to the message's
    ``response_url``.
    """


class WeComSuite(WeCom, SuiteReceiver):
    """A third-party app's command callback URL (第三方应用 指令回调), keyed by InfoType.

    Configured under ``WECOM_SUITE_``: ``TOKEN``, ``ENCODING_AES_KEY``, ``SUITE_ID`` and
    ``CORP_ID`` (the provider's own CorpID). URL verification (GET) carries the
    provider's CorpID, command callbacks (POST) the SuiteID; each is accepted only for
    its method. Every accepted callback is answered ``success``, and the latest
    ``suite_ticket`` is kept (:meth:`suite_ticket`).
    """

    def suite_ticket(self, app: Flask | None = None) -> str | None:  # type: ignore[override]
        """The latest suite_ticket WeCom pushed (None if none in the last 30 minutes)."""
        state = _state(app)
        return SuiteReceiver.suite_ticket(self, state.store, state.settings[self.name].suite_id)


def _state(app: Flask | None) -> _AppState:
    app = app or cast(Flask, current_app._get_current_object())  # type: ignore[attr-defined]
    state: _AppState | None = app.extensions.get("wecom")
    if state is None:
        raise RuntimeError("no WeCom instance is registered on this app")
    return state


def _cli_group() -> AppGroup:
    """``flask wecom ...`` commands."""
    group = AppGroup("wecom", help="WeCom (企业微信) callback endpoints and custom menus.")

    @group.command("endpoints")
    @click.option("--base-url", default="https://your.domain", help="The public URL of this app.")
    def endpoints(base_url: str) -> None:
        """Print each callback URL to paste into the WeCom admin console."""
        for endpoint in _state(None).middleware.endpoints:
            receive_ids = ", ".join(repr(r) for r in sorted(endpoint.receive_ids))
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
    state = _state(None)
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
