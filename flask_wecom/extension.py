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

import json
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

import click
from flask import Blueprint, Flask, Response, current_app, request
from flask.blueprints import BlueprintSetupState
from flask.cli import AppGroup
from werkzeug.local import LocalProxy

from .crypto import WeComCrypto
from .dedup import Deduplicator
from .errors import AESKeyError, ReplyError
from .messages import Message
from .middleware import DEFAULT_MAX_BODY, DEFAULT_TOLERANCE, Endpoint, OutcomeHook, WeComMiddleware
from .replies import Reply, TextReply
from .router import Handler, Pattern, Router
from .stores import Store, store_from_url

__all__ = ["WeCom", "current_message"]

logger = logging.getLogger("flask_wecom")

H = TypeVar("H", bound=Handler)
ErrorHandler = Callable[[Message, Exception], Any]

#: The message being handled, inside a handler (like ``flask.request``).
current_message: Message = cast(Message, LocalProxy(lambda: request.environ["wecom.message"]))

#: Configuration keys without a default (after the prefix, e.g. ``WECOM_TOKEN``).
REQUIRED_CONFIG = ("TOKEN", "ENCODING_AES_KEY", "CORP_ID")
#: Every other configuration key and its default; the README has the full table.
CONFIG_DEFAULTS: Mapping[str, Any] = {
    "PATH": "/wecom",
    "FORMAT": "xml",
    "PREVIOUS_CREDENTIALS": (),
    "MAX_BODY": DEFAULT_MAX_BODY,
    "TOLERANCE": DEFAULT_TOLERANCE,
    "DEDUP": True,
    "REDIS_URL": "",
    "DEDUP_TTL": 600.0,
    "DEDUP_LEASE": 3.0,
    "DEDUP_WAIT": 4.0,
}


@dataclass
class _AppState:
    """What one Flask app knows about WeCom: its middleware, store and mounted extensions."""

    middleware: WeComMiddleware | None = None
    store: Store | None = None
    mounted: dict[str, WeCom] = field(default_factory=dict)


class WeCom:
    """WeCom (企业微信) callbacks for a Flask app: one callback URL and its handlers.

    :param app: the app, or None to call :meth:`init_app` later (app factories).
    :param name: the blueprint name; give each instance its own when an app
        serves several agents.
    :param config_prefix: where settings are read from in ``app.config``:
        ``WECOM_`` gives ``WECOM_TOKEN``, ``WECOM_ENCODING_AES_KEY``, ...
    :param options: settings given directly, by their lower-case key without the
        prefix (``token=..., corp_id=..., path=...``); they win over ``app.config``.
    """

    def __init__(
        self,
        app: Flask | None = None,
        *,
        name: str = "wecom",
        config_prefix: str = "WECOM_",
        hooks: Iterable[OutcomeHook] = (),
        **options: Any,
    ) -> None:
        unknown = {k.upper() for k in options} - set(CONFIG_DEFAULTS) - set(REQUIRED_CONFIG)
        if unknown:
            raise TypeError(f"unknown WeCom options: {', '.join(sorted(unknown))}")
        self.name = name
        self.config_prefix = config_prefix
        self.options = {k.upper(): v for k, v in options.items()}
        self.hooks = list(hooks)
        #: The routing table; the decorators below add to it.
        self.router = Router()
        self._error_handler: ErrorHandler | None = None
        self.blueprint = Blueprint(name, __name__)
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

    def settings(self, app: Flask) -> dict[str, Any]:
        """The effective settings for ``app``: options, then ``app.config``, then defaults."""
        for key, default in CONFIG_DEFAULTS.items():
            app.config.setdefault(self.config_prefix + key, default)
        keys = (*REQUIRED_CONFIG, *CONFIG_DEFAULTS)
        found = {key: app.config.get(self.config_prefix + key) for key in keys}
        found.update(self.options)
        if isinstance(found["DEDUP"], str):  # from the environment: "0", "false", "off" ...
            found["DEDUP"] = found["DEDUP"].strip().lower() in ("1", "true", "yes", "on")
        if isinstance(found["PREVIOUS_CREDENTIALS"], str):  # from the environment: JSON
            found["PREVIOUS_CREDENTIALS"] = json.loads(found["PREVIOUS_CREDENTIALS"] or "[]")
        missing = [self.config_prefix + k for k, v in found.items() if v is None]
        if missing:
            raise RuntimeError(
                f"WeCom {self.name!r} needs {', '.join(missing)}: set them in app.config "
                "(e.g. from the environment with app.config.from_prefixed_env()) or pass them "
                "to WeCom(...). They are on the app's callback settings page (接收消息服务器配置)."
            )
        return found

    def _credentials(self, settings: Mapping[str, Any]) -> list[WeComCrypto]:
        sets = [settings, *settings["PREVIOUS_CREDENTIALS"]]
        try:
            return [
                WeComCrypto(
                    s.get("TOKEN") or s.get("token"),
                    s.get("ENCODING_AES_KEY") or s.get("encoding_aes_key"),
                    s.get("CORP_ID", settings["CORP_ID"]),
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
        app_state: _AppState = app.extensions.setdefault("wecom", _AppState())
        settings = self.settings(app)
        path = (state.url_prefix or "").rstrip("/") + settings["PATH"]
        endpoint = Endpoint(path, self._credentials(settings), settings["FORMAT"], name=self.name)
        if app_state.middleware is None:
            app_state.store = store_from_url(settings["REDIS_URL"])
            dedup = settings["DEDUP"] and Deduplicator(
                app_state.store,
                ttl=float(settings["DEDUP_TTL"]),
                lease=float(settings["DEDUP_LEASE"]),
                wait=float(settings["DEDUP_WAIT"]),
            )
            app_state.middleware = WeComMiddleware(
                app.wsgi_app,
                endpoints=[endpoint],
                max_body=int(settings["MAX_BODY"]),
                tolerance=float(settings["TOLERANCE"]),
                hooks=self.hooks,
                dedup=dedup,
            )
            app.wsgi_app = app_state.middleware  # type: ignore[method-assign]  # Flask's documented way
            app.cli.add_command(_cli_group())
        else:
            app_state.middleware.add_endpoint(endpoint)
            app_state.middleware.hooks.extend(self.hooks)
        app_state.mounted[self.name] = self
        app.add_url_rule(
            path, f"{self.name}.callback", self._view, methods=["POST"], strict_slashes=True
        )

    # -- decorators -----------------------------------------------------------------------

    def message(
        self,
        type: str,
        *,
        content: Pattern | None = None,
        agent_id: int | None = None,
        when: Callable[[Message], bool] | None = None,
    ) -> Callable[[H], H]:
        """Decorator: handle messages of ``type`` (``"text"``, ``"image"``, ...).

        ``content`` is an exact text or a compiled pattern; its groups are passed
        to the handler (unnamed as arguments, named as keyword arguments).
        """
        return self.router.message(type, content=content, agent_id=agent_id, when=when)

    def event(
        self,
        event: str,
        *,
        key: Pattern | None = None,
        change_type: str | None = None,
        agent_id: int | None = None,
        when: Callable[[Message], bool] | None = None,
    ) -> Callable[[H], H]:
        """Decorator: handle the event ``event`` (any case), optionally by key or ChangeType."""
        return self.router.event(
            event, key=key, change_type=change_type, agent_id=agent_id, when=when
        )

    def suite(self, info_type: str, *, change_type: str | None = None) -> Callable[[H], H]:
        """Decorator: handle third-party suite callbacks (第三方应用) with this InfoType."""
        return self.router.suite(info_type, change_type=change_type)

    def route(self, **criteria: Any) -> Callable[[H], H]:
        """Decorator: handle messages meeting any :class:`~flask_wecom.router.Rule` criteria."""
        return self.router.route(**criteria)

    def default(self, handler: H) -> H:
        """Decorator: the handler for messages no other handler matches."""
        return self.router.default(handler)

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
        try:
            return _as_reply(self.router.dispatch(message))
        except Exception as exc:
            if self._error_handler is None:
                logger.exception("handler for %s/%s failed", message.type, message.event)
                return None
            try:
                return _as_reply(self._error_handler(message, exc))
            except Exception:
                logger.exception("the WeCom error handler failed")
                return None

    def _view(self) -> Response:
        message: Message = request.environ["wecom.message"]
        reply = self.handle(message)
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


def _as_reply(result: Any) -> Reply | None:
    if result is None or isinstance(result, Reply):
        return result
    if isinstance(result, str):
        return TextReply(result) if result else None
    raise TypeError(
        f"a WeCom handler must return str, a Reply or None, not {type(result).__name__}"
    )


def _cli_group() -> AppGroup:
    """``flask wecom ...`` commands."""
    group = AppGroup("wecom", help="WeCom (企业微信) callback endpoints.")

    @group.command("endpoints")
    @click.option("--base-url", default="https://your.domain", help="The public URL of this app.")
    def endpoints(base_url: str) -> None:
        """Print each callback URL to paste into the WeCom admin console."""
        state: _AppState = current_app.extensions["wecom"]
        for endpoint in state.middleware.endpoints if state.middleware else ():
            receive_ids = ", ".join(repr(r) for c in endpoint.credentials for r in c.receive_ids)
            click.echo(
                f"{endpoint.name}: {base_url.rstrip('/')}{endpoint.path}  "
                f"({endpoint.format}, {len(endpoint.credentials)} credential set(s), "
                f"receive id {receive_ids})"
            )

    return group
