"""``flask-wecom longconn``: run an app's AI bot over the long connection (长连接).

Usage::

    flask-wecom longconn --app myproject.wsgi:app [--bot aibot] [--lease-ttl 5]

``--app`` names a Flask app that registers an :class:`~flask_wecom.extension.AIBot` (its
handlers, its ``app.config``, its store), or a :class:`~flask_wecom.aibot.BotReceiver` /
:class:`~flask_wecom.router.Router` (settings then come from the environment), or a factory
returning either. Settings, under the bot's prefix (``WECOM_AIBOT_`` by default):

* ``WECOM_AIBOT_BOT_ID`` and ``WECOM_AIBOT_LONGCONN_SECRET`` (required);
* ``WECOM_AIBOT_LONGCONN_URL`` (a private deployment's endpoint; default WeCom's);
* ``WECOM_REDIS_URL``: the store shared with the webhook (dedup) and by every process that
  runs this command for the bot (the lease: one holds the connection, the others stand by).

Run as many copies as you like, on as many hosts as you like, beside gunicorn or an ASGI
server: exactly one holds the connection. SIGTERM hands over at once after running handlers
finish (at most ``--drain`` seconds). Exit codes: 0 stopped, 1 the connection ended for good
(credentials refused, displaced by a client outside the group, reconnects exhausted),
2 usage or configuration error.

Needs the ``longconn`` extra (``pip install 'flask-wecom[longconn]'``).
"""

from __future__ import annotations

import importlib
import inspect
import logging
import os
from collections.abc import Mapping
from typing import Any

import click

from .dedup import Deduplicator
from .errors import WeComError
from .router import Router

__all__ = ["longconn"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def load_target(target: str) -> Any:
    """Import ``module:attribute``; call the attribute if it is a factory (no arguments)."""
    module_name, _, attribute = target.partition(":")
    try:
        found = getattr(importlib.import_module(module_name), attribute or "app")
        if _is_factory(found):
            found = found()
    except (ImportError, AttributeError) as exc:
        raise click.UsageError(f"cannot load {target!r}: {exc}") from exc
    except WeComError as exc:  # the app's own settings are incomplete
        raise click.UsageError(f"{target!r}: {exc}") from exc
    return found


def _is_factory(found: Any) -> bool:
    if not inspect.isfunction(found):
        return False
    parameters = inspect.signature(found).parameters.values()
    return all(
        p.default is not p.empty or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in parameters
    )


def _setting(config: Mapping[str, Any], key: str) -> str:
    return str(config.get(key) or os.environ.get(key) or "")


def _bot_of_app(app: Any, name: str | None) -> tuple[Router, str, Any, dict[str, Any]]:
    """The AIBot of a Flask app: receiver, prefix, store, and the app-wide dedup settings."""
    from .aibot import BotReceiver

    state = app.extensions.get("wecom")
    bots = {n: r for n, r in (state.mounted if state else {}).items() if isinstance(r, BotReceiver)}
    if name is not None:
        bots = {n: r for n, r in bots.items() if n == name}
    if len(bots) != 1:
        raise click.UsageError(
            f"the app registers {len(bots)} matching AI bots ({', '.join(bots) or 'none'}); "
            "name one with --bot"
        )
    receiver = next(iter(bots.values()))
    settings = state.app_settings
    dedup = {"on": settings.dedup, "ttl": settings.dedup_ttl, "lease": settings.dedup_lease}
    return receiver, str(getattr(receiver, "prefix", receiver.config_prefix)), state.store, dedup


@click.command("longconn")
@click.option("--app", "target", required=True, help="module:attr of a Flask app or a receiver.")
@click.option("--bot", "bot_name", default=None, help="The AIBot's name, if the app has several.")
@click.option("--threads", type=click.IntRange(1), default=16, help="Threads for sync handlers.")
@click.option("--lease-ttl", type=click.FloatRange(0.5), default=5.0, help="Seconds.")
@click.option("--standby-poll", type=click.FloatRange(0.05), default=0.5, help="Seconds.")
@click.option("--drain", type=click.FloatRange(0), default=10.0, help="Seconds on SIGTERM.")
@click.option("--log-level", default="INFO", help="Python logging level.")
def longconn(
    target: str,
    bot_name: str | None,
    threads: int,
    lease_ttl: float,
    standby_poll: float,
    drain: float,
    log_level: str,
) -> int:
    """Run an app's AI bot over WeCom's long connection (one holder across processes)."""
    if not logging.getLogger().handlers:
        logging.basicConfig(
            level=log_level.upper(), format="%(asctime)s %(levelname)s [%(process)d] %(message)s"
        )
    try:
        from .longconn import LongConnection, LongConnError
    except ImportError as exc:
        raise click.UsageError(
            f"{exc}: install the longconn extra (pip install 'flask-wecom[longconn]')"
        ) from exc
    found = load_target(target)
    config: Mapping[str, Any] = getattr(found, "config", {})
    if isinstance(found, Router):
        from .stores import store_from_url

        receiver, prefix = found, str(getattr(found, "config_prefix", "WECOM_AIBOT_"))
        store = store_from_url(_setting(config, "WECOM_REDIS_URL") or None)
        dedup: dict[str, Any] = {"on": True, "ttl": 600.0, "lease": 3.0}
        scope = None
    elif hasattr(found, "extensions"):
        receiver, prefix, store, dedup = _bot_of_app(found, bot_name)
        scope = found.app_context
    else:
        raise click.UsageError(f"{target!r} is neither a Flask app nor a bot receiver")
    bot_id = _setting(config, f"{prefix}BOT_ID")
    secret = _setting(config, f"{prefix}LONGCONN_SECRET")
    if not bot_id or not secret:
        raise click.UsageError(
            f"set {prefix}BOT_ID and {prefix}LONGCONN_SECRET (the BotID and the long-connection "
            "secret, 长连接专用密钥, in the bot's API settings)"
        )
    options: dict[str, Any] = {
        "store": store,
        "dedup": dedup["on"]
        and Deduplicator(store, ttl=dedup["ttl"], lease=dedup["lease"], wait=0.0, write_behind=0.0),
        "threads": threads,
        "lease_ttl": lease_ttl,
        "standby_poll": standby_poll,
        "drain_timeout": drain,
    }
    if url := _setting(config, f"{prefix}LONGCONN_URL"):
        options["url"] = url
    if scope is not None:
        options["scope"] = scope
    connection = LongConnection(receiver, bot_id, secret, **options)
    try:
        connection.run_forever()
    except (LongConnError, WeComError) as exc:
        click.echo(f"Error: {exc}", err=True)
        return EXIT_FAILED
    return EXIT_OK
