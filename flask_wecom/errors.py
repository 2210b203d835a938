"""The exception tree of flask_wecom.

Every failure the library reports is a :class:`WeComError`. Each leaf carries
``code``, the return code Tencent's official ``WXBizMsgCrypt`` library uses for
the same failure (negative numbers, -40001 to -40011), so logs and the
:mod:`flask_wecom.compat` shim speak the official language. API failures from
the WeCom server (:class:`APIError`) carry the server's positive ``errcode``
instead; the two code spaces never mix.

Errors never carry decrypted plaintext or key material: only the request's
public parameters (timestamp, nonce) and the chained original exception.

This module imports nothing from the package.
"""

from __future__ import annotations

__all__ = [
    "WeComError",
    "SignatureError",
    "TimestampError",
    "ParseError",
    "PayloadTooLarge",
    "AESKeyError",
    "EncryptError",
    "DecryptError",
    "Base64DecodeError",
    "IllegalBufferError",
    "ReceiveIdError",
    "ReplyError",
    "MenuError",
    "APIError",
    "StoreError",
    "TransportError",
    "MethodNotAllowed",
    "NotACallback",
    "Busy",
    "ConfigError",
]


class WeComError(Exception):
    """Root of every error raised by flask_wecom.

    :param message: a human-readable reason, safe to log.
    :param timestamp: the request's ``timestamp`` query parameter, if any.
    :param nonce: the request's ``nonce`` query parameter, if any.
    """

    #: The official WXBizMsgCrypt return code for this kind of failure.
    code: int = -40000
    #: A short, stable, lower-case name for metrics and logs.
    reason: str = "error"
    #: The HTTP status a callback endpoint answers when this error refuses a request.
    status: int = 400
    #: What to check or change when this error refuses a callback, for logs and the CLI.
    hint: str = ""

    def __init__(
        self,
        message: str = "",
        *,
        timestamp: str | None = None,
        nonce: str | None = None,
    ) -> None:
        super().__init__(message or self.__class__.__doc__ or self.reason)
        #: The request's timestamp parameter, or None.
        self.timestamp = timestamp
        #: The request's nonce parameter, or None.
        self.nonce = nonce

    @property
    def original_error(self) -> BaseException | None:
        """The exception this one was raised from (``raise ... from e``), if any."""
        return self.__cause__


class SignatureError(WeComError):
    """The msg_signature is missing or does not match (签名验证错误)."""

    code = -40001
    reason = "signature"
    status = 403
    hint = (
        "msg_signature does not match: the Token differs from the admin console's "
        "(接收消息服务器配置), or the request is forged"
    )


class TimestampError(SignatureError):
    """The timestamp is missing, not a number, or outside the replay window."""

    code = -40001
    reason = "timestamp"
    hint = (
        "the timestamp is missing or outside the replay window: check this server's clock "
        "(NTP), or the request is an old replay"
    )


class ParseError(WeComError):
    """The XML or JSON document is malformed or lacks a required field (解析失败)."""

    code = -40002
    reason = "parse"


class PayloadTooLarge(ParseError):
    """The request body is larger than the configured limit."""

    code = -40002
    reason = "too_large"
    status = 413
    hint = (
        "the request is larger than WECOM_MAX_BODY or WECOM_MAX_ENVELOPE allow "
        "(callbacks are a few KB): not from WeCom"
    )


class AESKeyError(WeComError, ValueError):
    """The EncodingAESKey is not 43 base64 characters decoding to 32 bytes (AESKey 非法)."""

    code = -40004
    reason = "aes_key"


class EncryptError(WeComError):
    """The reply could not be encrypted (加密失败)."""

    code = -40006
    reason = "encrypt"


class DecryptError(WeComError):
    """The ciphertext could not be decrypted (解密失败)."""

    code = -40007
    reason = "decrypt"
    hint = "the EncodingAESKey differs from the admin console's (接收消息服务器配置)"


class Base64DecodeError(DecryptError):
    """The ciphertext is not valid base64 (base64解密失败)."""

    code = -40010
    reason = "base64"


class IllegalBufferError(DecryptError):
    """The decrypted buffer has bad padding or a bad length prefix (解密后得到的buffer非法)."""

    code = -40008
    reason = "buffer"


class ReceiveIdError(DecryptError):
    """The receive id inside the ciphertext is not an accepted one (ReceiveId 校验错误)."""

    code = -40005
    reason = "receive_id"
    hint = (
        "the receive id inside the ciphertext is not one this endpoint accepts: check "
        "WECOM_CORP_ID (企业ID), WECOM_SUITE_SUITE_ID or the AI bot's empty id; see the "
        "receive-id table in the docs"
    )


class ReplyError(WeComError, ValueError):
    """A reply cannot be built: a documented limit is exceeded or the reply is not allowed here."""

    code = -40011
    reason = "reply"


class NotACallback(ParseError):
    """The document decrypts but is not a callback to this endpoint.

    A reply of ours posted back (its ``FromUserName`` is our own receive id), a callback for
    another agent (``AgentID``), or an AI-bot document without a sender.
    """

    reason = "not_a_callback"


class MethodNotAllowed(WeComError):
    """A callback endpoint answers GET (URL verification) and POST (callbacks) only."""

    reason = "method"
    status = 405


class Busy(WeComError):
    """Every handler thread is taken; WeCom is asked to retry later (503)."""

    reason = "busy"
    status = 503
    hint = "every handler thread is busy (slow handlers?): raise WECOM_THREADS or defer them"


class ConfigError(WeComError, ValueError, RuntimeError):
    """A setting is missing or malformed; the message names the key and where its value
    comes from in the admin console. Raised at start-up, never per request."""

    reason = "config"

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key} {message}")
        #: The configuration key at fault, e.g. ``WECOM_ENCODING_AES_KEY``.
        self.key = key


class MenuError(WeComError, ValueError):
    """A custom menu (自定义菜单) breaks a documented limit; found before any request is sent."""

    code = -40000
    reason = "menu"


class TransportError(WeComError):
    """The WeCom API could not be reached, or did not answer with a WeCom JSON object.

    Raised for connection failures, timeouts, HTTP error statuses and bodies that are not
    a JSON object with an integer ``errcode``. The message names the method, the path and
    the kind of failure; never the query string, which holds ``access_token`` or
    ``corpsecret``. For that reason the requests exception is not chained either.
    """

    reason = "transport"


class StoreError(WeComError):
    """The shared store (for example Redis) could not be reached or answered badly."""

    code = -40000
    reason = "store"


class APIError(WeComError):
    """The WeCom server API answered with a non-zero ``errcode``.

    :param errcode: the server's errcode (positive, e.g. 40014 invalid access_token).
    :param errmsg: the server's errmsg (informative only; decide on ``errcode``).
    """

    reason = "api"

    def __init__(self, errcode: int, errmsg: str = "") -> None:
        super().__init__(f"WeCom API error {errcode}: {errmsg}")
        #: The server's errcode. Unlike ``code`` of the other errors, this is positive.
        self.errcode = errcode
        #: The server's errmsg.
        self.errmsg = errmsg
        self.code = errcode
