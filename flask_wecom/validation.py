"""One validator for WeCom credentials, shared by start-up and ``flask-wecom verify``.

Each ``check_*`` function takes a value and the configuration key it came from,
raises :class:`~flask_wecom.errors.ConfigError` for a value WeCom would refuse or that
cannot work, and returns a list of warnings (each a sentence naming the key) for a value
that works but is weak. An error's message names the key and says where in the admin
console the value comes from::

    WECOM_ENCODING_AES_KEY must be 43 characters, got 42; it is the EncodingAESKey on
    the callback settings page (接收消息服务器配置 > EncodingAESKey)

Usage::

    warnings = check_credentials(app.config, "WECOM_")             # an app (CorpID required)
    warnings = check_credentials(config, "WECOM_AIBOT_", receive_id_required=False)
    for warning in warnings:
        logger.warning(warning)

Rules (the admin console's, 接收消息服务器配置):

* Token: 1 to 32 ASCII letters and digits; below :data:`STRONG_TOKEN_LENGTH` characters
  a warning, as a short Token is recovered offline from one signed URL check.
* EncodingAESKey: 43 characters of the base64 alphabet, decoding to a 32-byte AES key.
  The console generates letters and digits only; ``+`` and ``/`` work but get a warning.
* Receive id (CorpID, SuiteID; ``""`` for AI bots): no white space; not empty when
  required (self-built apps and suites).

Framework-free: imports only the standard library and the package's errors.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from .errors import ConfigError

__all__ = [
    "MAX_TOKEN_LENGTH",
    "STRONG_TOKEN_LENGTH",
    "ConfigError",
    "check_credentials",
    "check_encoding_aes_key",
    "check_receive_id",
    "check_token",
]

#: The admin console accepts Tokens of at most this many characters.
MAX_TOKEN_LENGTH = 32
#: Shorter Tokens get a warning: they can be found by brute force from one signed request.
STRONG_TOKEN_LENGTH = 16
#: The length of an EncodingAESKey.
AES_KEY_LENGTH = 43

_TOKEN_CHARACTERS = re.compile(r"[A-Za-z0-9]*")
_KEY_CHARACTERS = re.compile(r"[A-Za-z0-9+/]*")
_CONSOLE_KEY_CHARACTERS = re.compile(r"[A-Za-z0-9]*")

_WHERE_TOKEN = "the Token on the callback settings page (接收消息服务器配置 > Token)"  # noqa: S105
_WHERE_KEY = (
    "the EncodingAESKey on the callback settings page (接收消息服务器配置 > EncodingAESKey)"
)
_WHERE_RECEIVE_ID = (
    "the receive id: the CorpID (我的企业 > 企业信息 > 企业ID) for self-built apps, "
    "the SuiteID for third-party apps, '' for AI bots"
)


def _error(key: str, message: str, where: str) -> ConfigError:
    return ConfigError(key, f"{message}; it is {where}")


def _string(value: object, key: str, where: str) -> str:
    if not isinstance(value, str):
        raise _error(key, f"must be a string, got {type(value).__name__}", where)
    if value != value.strip():
        raise _error(key, "has white space around it (a copy-paste slip?)", where)
    return value


def check_token(value: object, key: str = "WECOM_TOKEN") -> list[str]:
    """Check a Token: 1 to 32 ASCII letters and digits, as the admin console accepts.

    :param value: the Token.
    :param key: the configuration key it came from, named in messages.
    :returns: warnings: one when the Token is shorter than :data:`STRONG_TOKEN_LENGTH`.
    :raises ConfigError: not a string, empty, too long, white space or other characters.
    """
    token = _string(value, key, _WHERE_TOKEN)
    if not token:
        raise _error(key, "must not be empty", _WHERE_TOKEN)
    if len(token) > MAX_TOKEN_LENGTH:
        raise _error(
            key, f"must be at most {MAX_TOKEN_LENGTH} characters, got {len(token)}", _WHERE_TOKEN
        )
    if not _TOKEN_CHARACTERS.fullmatch(token):
        raise _error(key, "may contain only ASCII letters and digits", _WHERE_TOKEN)
    if len(token) < STRONG_TOKEN_LENGTH:
        return [
            f"{key} has {len(token)} characters: a Token under {STRONG_TOKEN_LENGTH} can be "
            "recovered offline from one signed URL check; set a new one of "
            f"{MAX_TOKEN_LENGTH} (flask-wecom genkey --token)"
        ]
    return []


def check_encoding_aes_key(value: object, key: str = "WECOM_ENCODING_AES_KEY") -> list[str]:
    """Check an EncodingAESKey: 43 base64 characters decoding to a 32-byte AES key.

    :param value: the EncodingAESKey.
    :param key: the configuration key it came from, named in messages.
    :returns: warnings: one when the key holds ``+`` or ``/``, which the console never makes.
    :raises ConfigError: not a string, not 43 characters, or outside the base64 alphabet.
    """
    aes_key = _string(value, key, _WHERE_KEY)
    if len(aes_key) != AES_KEY_LENGTH:
        raise _error(key, f"must be {AES_KEY_LENGTH} characters, got {len(aes_key)}", _WHERE_KEY)
    if not _KEY_CHARACTERS.fullmatch(aes_key):
        raise _error(key, "may contain only A-Z, a-z, 0-9, '+' and '/'", _WHERE_KEY)
    # 43 base64 characters are 258 bits: always 32 bytes (the last 2 bits are unused).
    if not _CONSOLE_KEY_CHARACTERS.fullmatch(aes_key):
        return [
            f"{key} holds '+' or '/': it works, but the admin console makes keys of letters "
            "and digits only; check it was copied from there"
        ]
    return []


def check_receive_id(
    value: object, key: str = "WECOM_CORP_ID", *, required: bool = True
) -> list[str]:
    """Check a receive id (CorpID, SuiteID), or several (a list, or a string with commas).

    :param value: a string (ids separated by commas) or a non-empty sequence of strings.
    :param key: the configuration key it came from, named in messages.
    :param required: ``True`` (self-built apps, suites): every id must be non-empty;
        ``False`` (AI bots): ``""`` is accepted.
    :returns: warnings (none today; the list keeps the shape of the other checks).
    :raises ConfigError: not a string or strings, white space in or around an id, or an
        empty id when required.
    """
    if isinstance(value, str):
        ids: list[object] = [
            part.strip() for part in _string(value, key, _WHERE_RECEIVE_ID).split(",")
        ]
    elif isinstance(value, Sequence) and value:
        ids = list(value)
    else:
        raise _error(
            key,
            f"must be a string or a list of strings, got {value!r}",
            _WHERE_RECEIVE_ID,
        )
    for receive_id in ids:
        if not isinstance(receive_id, str):
            raise _error(key, f"holds {receive_id!r}, not a string", _WHERE_RECEIVE_ID)
        if any(c.isspace() for c in receive_id):
            raise _error(key, f"holds white space in the id {receive_id!r}", _WHERE_RECEIVE_ID)
        if not receive_id.isprintable():
            raise _error(
                key,
                f"holds a control character or undecodable byte: {receive_id!r}",
                _WHERE_RECEIVE_ID,
            )
        if required and not receive_id:
            raise _error(
                key, "must not be empty for a self-built app or a suite", _WHERE_RECEIVE_ID
            )
    return []


def check_credentials(
    settings: Mapping[str, Any], prefix: str = "WECOM_", *, receive_id_required: bool = True
) -> list[str]:
    """Check one endpoint's Token, EncodingAESKey and receive id in a settings mapping.

    Reads ``<prefix>TOKEN``, ``<prefix>ENCODING_AES_KEY`` and ``<prefix>CORP_ID``
    (``app.config``, ``os.environ``, any mapping).

    :param settings: the mapping to read.
    :param prefix: the endpoint's key prefix, e.g. ``"WECOM_"`` or ``"WECOM_AIBOT_"``.
    :param receive_id_required: ``False`` for AI bots, whose receive id is ``""``.
    :returns: the warnings of every check, each naming its key.
    :raises ConfigError: the first value that is missing or malformed, naming its key.
    """
    missing = [
        prefix + name
        for name in ("TOKEN", "ENCODING_AES_KEY")
        if settings.get(prefix + name) in (None, "")
    ]
    if missing:
        raise ConfigError(
            ", ".join(missing),
            "must be set; they are on the callback settings page (接收消息服务器配置)",
        )
    return [
        *check_token(settings[prefix + "TOKEN"], prefix + "TOKEN"),
        *check_encoding_aes_key(settings[prefix + "ENCODING_AES_KEY"], prefix + "ENCODING_AES_KEY"),
        *check_receive_id(
            settings.get(prefix + "CORP_ID", ""), prefix + "CORP_ID", required=receive_id_required
        ),
    ]
