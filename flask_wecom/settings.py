"""Settings read once from a configuration mapping (``app.config``, the environment).

Keys come in two kinds:

* **endpoint keys**, read with each callback URL's prefix (``WECOM_TOKEN``,
  ``WECOM_AIBOT_TOKEN``, ``WECOM_SALES_TOKEN`` ...): :data:`ENDPOINT_DEFAULTS`;
* **app-wide keys**, always ``WECOM_<KEY>``, shared by every endpoint of an app:
  :data:`APP_DEFAULTS`.

:func:`read_settings` converts and checks every value once, into frozen objects; an
error names the exact key (``WECOM_DEADLINE must be a number of seconds under 5, got
'abc'``). Options given in code win over the mapping. Framework-free.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any

from .errors import AESKeyError, ConfigError
from .pipeline import DEFAULT_MAX_BODY, DEFAULT_MAX_ENVELOPE, DEFAULT_TOLERANCE
from .validation import check_encoding_aes_key, check_receive_id, check_token

logger = logging.getLogger("flask_wecom")

__all__ = [
    "APP_DEFAULTS",
    "ENDPOINT_DEFAULTS",
    "LONGCONN_KEYS",
    "REQUIRED",
    "AppSettings",
    "EndpointSettings",
    "read_app_settings",
    "read_settings",
    "uses_webhook",
]

#: Endpoint keys without a default.
REQUIRED = ("TOKEN", "ENCODING_AES_KEY", "CORP_ID")
#: An AI bot's long-connection keys: the BotID and the long-connection secret (长连接专用密钥).
LONGCONN_KEYS = ("BOT_ID", "LONGCONN_SECRET")
_WEBHOOK_WHERE = (
    "in app.config (for example from environment variables of the same names) or as "
    "constructor options. They are on the callback settings page (接收消息服务器配置)."
)
#: Endpoint keys with their defaults.
ENDPOINT_DEFAULTS: Mapping[str, Any] = {
    "PATH": "/wecom",
    "FORMAT": "xml",
    "PREVIOUS_CREDENTIALS": (),
    "DEADLINE": 4.0,
    "SECRET": "",
    "AGENT_ID": "",
    "API_BASE_URL": "https://qyapi.weixin.qq.com",
    "API_ALLOW_HTTP": False,
    "SUITE_ID": "",
}
#: App-wide keys with their defaults.
APP_DEFAULTS: Mapping[str, Any] = {
    "MAX_BODY": DEFAULT_MAX_BODY,
    "MAX_ENVELOPE": DEFAULT_MAX_ENVELOPE,
    "TOLERANCE": DEFAULT_TOLERANCE,
    "URL_CHECK": True,
    "DEDUP": True,
    "REDIS_URL": "",
    "DEDUP_TTL": 600.0,
    "DEDUP_LEASE": 3.0,
    "DEDUP_WAIT": 4.0,
    "DEDUP_WRITE_BEHIND": None,
    "THREADS": 8,
    #: None: WeCom's own (:data:`flask_wecom.client.RESPONSE_URL_ORIGINS`).
    "RESPONSE_URL_ORIGINS": None,
}
APP_PREFIX = "WECOM_"

_WHERE = {
    "TOKEN": "the Token on the callback settings page (接收消息服务器配置 > Token)",
    "ENCODING_AES_KEY": "the EncodingAESKey on the callback settings page (接收消息服务器配置)",
    "CORP_ID": "the CorpID (我的企业 > 企业信息 > 企业ID); '' for AI bots",
    "SUITE_ID": "the SuiteID of the third-party app (应用管理 > 第三方应用)",
    "SECRET": "the app's Secret (应用管理 > 应用 > Secret)",
    "AGENT_ID": "the app's AgentId (应用管理 > 应用 > AgentId)",
}


@dataclass(frozen=True)
class EndpointSettings:
    """One callback URL's settings, converted and checked."""

    prefix: str
    token: str
    encoding_aes_key: str
    #: The accepted receive ids: CorpIDs, or ``("",)`` for AI bots.
    corp_id: tuple[str, ...]
    path: str
    format: str
    #: Earlier credential sets during a key rotation: (token, encoding_aes_key) pairs.
    previous_credentials: tuple[tuple[str, str], ...]
    deadline: float
    secret: str
    agent_id: str
    api_base_url: str
    #: Accept an ``http://`` API base URL on any host (not only loopback).
    api_allow_http: bool
    suite_id: str


@dataclass(frozen=True)
class AppSettings:
    """Settings shared by every endpoint of an app."""

    max_body: int
    max_envelope: int
    tolerance: float
    url_check: bool
    dedup: bool
    redis_url: str
    dedup_ttl: float
    dedup_lease: float
    dedup_wait: float
    dedup_write_behind: float | None
    threads: int
    #: The origins an AI bot's ``response_url`` may point to; None: WeCom's own.
    response_url_origins: tuple[str, ...] | None


def read_settings(
    config: Mapping[str, Any],
    prefix: str,
    *,
    options: Mapping[str, Any] | None = None,
    preset: Mapping[str, Any] | None = None,
    required: tuple[str, ...] = REQUIRED,
) -> tuple[EndpointSettings, AppSettings]:
    """Read an endpoint's and its app's settings from ``config``.

    :param prefix: the endpoint's key prefix, e.g. ``"WECOM_"``.
    :param options: values given in code, by key without prefix (they win).
    :param preset: the endpoint kind's own defaults (an AI bot's ``FORMAT`` is json).
    :param required: the endpoint keys that must be set.
    :raises ConfigError: a key is missing or malformed; the message names it.
    """
    value = _lookup(config, options)
    endpoint_defaults = {**ENDPOINT_DEFAULTS, **(preset or {})}

    missing = [
        prefix + key for key in required if value(key, prefix, endpoint_defaults) in (None, "")
    ]
    if missing:
        raise ConfigError(", ".join(missing), f"must be set: {_WEBHOOK_WHERE}")
    for warning in _check_credentials(value, prefix, endpoint_defaults, "CORP_ID" in required):
        logger.warning(warning)
    reader = _Reader(prefix)
    endpoint = EndpointSettings(
        prefix=prefix,
        token=reader.text("TOKEN", value("TOKEN", prefix, endpoint_defaults)),
        encoding_aes_key=reader.text(
            "ENCODING_AES_KEY", value("ENCODING_AES_KEY", prefix, endpoint_defaults)
        ),
        corp_id=reader.ids("CORP_ID", value("CORP_ID", prefix, endpoint_defaults)),
        path=reader.path("PATH", value("PATH", prefix, endpoint_defaults)),
        format=reader.choice("FORMAT", value("FORMAT", prefix, endpoint_defaults), ("xml", "json")),
        previous_credentials=reader.previous(
            "PREVIOUS_CREDENTIALS", value("PREVIOUS_CREDENTIALS", prefix, endpoint_defaults)
        ),
        deadline=reader.number("DEADLINE", value("DEADLINE", prefix, endpoint_defaults), 0, 5),
        secret=reader.text("SECRET", value("SECRET", prefix, endpoint_defaults), empty=True),
        agent_id=reader.digits("AGENT_ID", value("AGENT_ID", prefix, endpoint_defaults)),
        api_base_url=reader.text("API_BASE_URL", value("API_BASE_URL", prefix, endpoint_defaults)),
        api_allow_http=reader.flag(
            "API_ALLOW_HTTP", value("API_ALLOW_HTTP", prefix, endpoint_defaults)
        ),
        suite_id=reader.text("SUITE_ID", value("SUITE_ID", prefix, endpoint_defaults), empty=True),
    )
    return endpoint, read_app_settings(config, options=options)


def read_app_settings(
    config: Mapping[str, Any], *, options: Mapping[str, Any] | None = None
) -> AppSettings:
    """Read an app's settings (``WECOM_<KEY>``, :data:`APP_DEFAULTS`) from ``config``.

    :param options: values given in code, by key without prefix (they win).
    :raises ConfigError: a key is malformed; the message names it.
    """
    value = _lookup(config, options)
    app_reader = _Reader(APP_PREFIX)
    app_defaults = APP_DEFAULTS
    app = AppSettings(
        max_body=app_reader.integer("MAX_BODY", value("MAX_BODY", APP_PREFIX, app_defaults), 1),
        max_envelope=app_reader.integer(
            "MAX_ENVELOPE", value("MAX_ENVELOPE", APP_PREFIX, app_defaults), 1
        ),
        tolerance=app_reader.number(
            "TOLERANCE", value("TOLERANCE", APP_PREFIX, app_defaults), 1, float("inf")
        ),
        url_check=app_reader.flag("URL_CHECK", value("URL_CHECK", APP_PREFIX, app_defaults)),
        dedup=app_reader.flag("DEDUP", value("DEDUP", APP_PREFIX, app_defaults)),
        redis_url=app_reader.text(
            "REDIS_URL", value("REDIS_URL", APP_PREFIX, app_defaults), empty=True
        ),
        dedup_ttl=app_reader.number(
            "DEDUP_TTL", value("DEDUP_TTL", APP_PREFIX, app_defaults), 1, float("inf")
        ),
        dedup_lease=app_reader.number(
            "DEDUP_LEASE", value("DEDUP_LEASE", APP_PREFIX, app_defaults), 0.1, 60
        ),
        dedup_wait=app_reader.number(
            "DEDUP_WAIT", value("DEDUP_WAIT", APP_PREFIX, app_defaults), 0, 5
        ),
        dedup_write_behind=app_reader.optional_number(
            "DEDUP_WRITE_BEHIND", value("DEDUP_WRITE_BEHIND", APP_PREFIX, app_defaults)
        ),
        threads=app_reader.integer("THREADS", value("THREADS", APP_PREFIX, app_defaults), 1),
        response_url_origins=app_reader.origins(
            "RESPONSE_URL_ORIGINS", value("RESPONSE_URL_ORIGINS", APP_PREFIX, app_defaults)
        ),
    )
    if app.dedup and app.dedup_ttl < 2 * app.tolerance:
        raise ConfigError(
            "WECOM_DEDUP_TTL",
            f"must be at least twice WECOM_TOLERANCE ({2 * app.tolerance:g} s), got "
            f"{app.dedup_ttl:g}: a replay inside the window would run its handler again",
        )
    return app


def uses_webhook(
    config: Mapping[str, Any],
    prefix: str,
    *,
    options: Mapping[str, Any] | None = None,
    preset: Mapping[str, Any] | None = None,
    required: tuple[str, ...] = REQUIRED,
    longconn: bool = False,
) -> bool:
    """Whether an endpoint's webhook keys (``required``) are set, so its URL is mounted.

    With ``longconn`` (an AI bot), an endpoint that sets none of them but both
    :data:`LONGCONN_KEYS` (the BotID and the long-connection secret) runs over the long
    connection only: False.

    :raises ConfigError: neither set is complete (the message names the missing keys), or
        the webhook's is half set.
    """
    value = _lookup(config, options)
    defaults = {**ENDPOINT_DEFAULTS, **(preset or {})}

    def unset(keys: tuple[str, ...]) -> list[str]:
        return [prefix + k for k in keys if value(k, prefix, defaults) in (None, "")]

    missing = unset(required)
    if not missing:
        return True
    if not longconn:
        raise ConfigError(", ".join(missing), f"must be set: {_WEBHOOK_WHERE}")
    untouched = len(missing) == len(required)
    missing_longconn = unset(LONGCONN_KEYS)
    if untouched and not missing_longconn:
        return False
    if not untouched:  # a half-set webhook is a slip, not a choice
        raise ConfigError(", ".join(missing), f"must be set too: {_WEBHOOK_WHERE}")
    raise ConfigError(
        f"{', '.join(missing)} (the webhook) or {', '.join(missing_longconn)} (the long "
        "connection)",
        "must be set: an AI bot needs the webhook's Token and EncodingAESKey, or the BotID "
        "and long-connection secret (长连接专用密钥) of its API settings, or both",
    )


def _lookup(
    config: Mapping[str, Any], options: Mapping[str, Any] | None
) -> Callable[[str, str, Mapping[str, Any]], Any]:
    """``value(key, prefix, defaults)``: an option given in code, else ``config``, else default."""
    given = {k.upper(): v for k, v in (options or {}).items()}

    def value(key: str, key_prefix: str, defaults: Mapping[str, Any]) -> Any:
        if key in given:
            return given[key]
        return config.get(key_prefix + key, defaults.get(key))

    return value


def _check_credentials(
    value: Any, prefix: str, defaults: Mapping[str, Any], corp_id_required: bool
) -> list[str]:
    """The credentials through the validator ``flask-wecom verify`` uses; its warnings."""
    warnings = check_token(value("TOKEN", prefix, defaults), prefix + "TOKEN")
    warnings += check_encoding_aes_key(
        value("ENCODING_AES_KEY", prefix, defaults), prefix + "ENCODING_AES_KEY"
    )
    warnings += check_receive_id(
        value("CORP_ID", prefix, defaults), prefix + "CORP_ID", required=corp_id_required
    )
    return warnings


def app_differences(one: AppSettings, other: AppSettings) -> list[str]:
    """The app-wide keys whose values differ between two readings."""
    return [
        APP_PREFIX + f.name.upper()
        for f in fields(AppSettings)
        if getattr(one, f.name) != getattr(other, f.name)
    ]


class _Reader:
    """Converters that name the key in every error."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def fail(self, key: str, message: str) -> ConfigError:
        where = _WHERE.get(key)
        return ConfigError(self.prefix + key, message + (f"; it is {where}" if where else ""))

    def text(self, key: str, raw: Any, *, empty: bool = False) -> str:
        if raw is None and empty:
            return ""
        if not isinstance(raw, str):
            raise self.fail(key, f"must be a string, got {type(raw).__name__}")
        if raw != raw.strip():
            raise self.fail(key, "has white space around it (a copy-paste slip?)")
        if not raw and not empty:
            raise self.fail(key, "must not be empty")
        return raw

    def ids(self, key: str, raw: Any) -> tuple[str, ...]:
        if isinstance(raw, str):
            if raw != raw.strip():
                raise self.fail(key, "has white space around it (a copy-paste slip?)")
            parts = [part.strip() for part in raw.split(",")] if raw else [""]
        elif isinstance(raw, list | tuple) and all(isinstance(p, str) for p in raw) and raw:
            parts = list(raw)
        else:
            raise self.fail(key, f"must be a string or a list of strings, got {raw!r}")
        if any(p != p.strip() for p in parts):
            raise self.fail(key, "has white space around an id (a copy-paste slip?)")
        return tuple(parts)

    def path(self, key: str, raw: Any) -> str:
        text = self.text(key, raw)
        if not text.startswith("/"):
            raise self.fail(key, f"must start with '/', got {text!r}")
        return text

    def choice(self, key: str, raw: Any, choices: tuple[str, ...]) -> str:
        if raw not in choices:
            raise self.fail(key, f"must be one of {', '.join(choices)}, got {raw!r}")
        return str(raw)

    def number(self, key: str, raw: Any, low: float, high: float) -> float:
        try:
            number = float(raw)
        except (TypeError, ValueError):
            raise self.fail(key, f"must be a number of seconds, got {raw!r}") from None
        if not low <= number <= high or (high == 5 and number >= 5):
            bound = f"under {high:g}" if high == 5 else f"at most {high:g}"
            raise self.fail(key, f"must be at least {low:g} and {bound}, got {raw!r}")
        return number

    def optional_number(self, key: str, raw: Any) -> float | None:
        return None if raw in (None, "") else self.number(key, raw, 0, 60)

    def integer(self, key: str, raw: Any, low: int) -> int:
        try:
            number = int(raw)
        except (TypeError, ValueError):
            raise self.fail(key, f"must be a whole number, got {raw!r}") from None
        if number < low:
            raise self.fail(key, f"must be at least {low}, got {raw!r}")
        return number

    def digits(self, key: str, raw: Any) -> str:
        text = "" if raw is None else str(raw)
        if text and not (text.isascii() and text.isdigit()):
            raise self.fail(key, f"must be the app's numeric AgentId, got {raw!r}")
        return text

    def flag(self, key: str, raw: Any) -> bool:
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, str) and raw.strip().lower() in ("1", "true", "yes", "on"):
            return True
        if isinstance(raw, str) and raw.strip().lower() in ("0", "false", "no", "off", ""):
            return False
        if isinstance(raw, int):
            return bool(raw)
        raise self.fail(key, f"must be true or false, got {raw!r}")

    def origins(self, key: str, raw: Any) -> tuple[str, ...] | None:
        """A list of origins (``scheme://host[:port]``) or a comma-separated string of them;
        None (or "") for the default."""
        if raw in (None, ""):
            return None
        if isinstance(raw, str):
            parts = [part.strip() for part in raw.split(",")]
        elif isinstance(raw, list | tuple) and all(isinstance(p, str) for p in raw):
            parts = list(raw)
        else:
            raise self.fail(
                key, f"must be a list of origins or a comma-separated string, got {raw!r}"
            )
        if not parts or "" in parts:
            raise self.fail(key, "must name one origin or more, none of them empty")
        from .client import UnsafeURLError, check_origin  # the client extra's module

        for origin in parts:
            try:
                check_origin(origin)
            except UnsafeURLError as exc:
                raise self.fail(key, f"holds {origin!r}: {exc}") from None
        return tuple(parts)

    def previous(self, key: str, raw: Any) -> tuple[tuple[str, str], ...]:
        if isinstance(raw, str):  # from the environment: JSON
            try:
                raw = json.loads(raw or "[]")
            except ValueError:
                raise self.fail(key, "must be a JSON list of credential sets") from None
        if not isinstance(raw, list | tuple):
            raise self.fail(key, f"must be a list of credential sets, got {raw!r}")
        sets = []
        for entry in raw:
            if not isinstance(entry, Mapping):
                raise self.fail(key, "holds something that is not a mapping")
            token = entry.get("TOKEN") or entry.get("token")
            key_ = entry.get("ENCODING_AES_KEY") or entry.get("encoding_aes_key")
            if not isinstance(token, str) or not isinstance(key_, str):
                raise self.fail(key, "entries need TOKEN and ENCODING_AES_KEY")
            sets.append((token, key_))
        return tuple(sets)


def crypto_error(prefix: str, exc: AESKeyError | ValueError) -> ConfigError:
    """A credential error from :class:`~flask_wecom.crypto.WeComCrypto`, naming its key."""
    key = "ENCODING_AES_KEY" if isinstance(exc, AESKeyError) else "TOKEN"
    return ConfigError(prefix + key, f"is unusable: {exc}")
