"""Drop-in replacements for Tencent's sample classes ``WXBizMsgCrypt`` and ``WXBizJsonMsgCrypt``.

A project that copied the official ``WXBizMsgCrypt.py`` (python3 flavour)
changes one import line::

    from flask_wecom.compat import WXBizMsgCrypt

and keeps its ``(ret, value)`` calls and return codes (0, -40001 ... -40011).
Underneath is :class:`~flask_wecom.crypto.WeComCrypto`, so it gains strict
padding checks, constant-time signature checks and typed errors. Value types
follow the sample: ``VerifyURL`` and ``DecryptMsg`` give bytes, ``EncryptMsg``
gives str. This module only translates exceptions into codes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from .crypto import WeComCrypto
from .envelope import EnvelopeFormat
from .errors import AESKeyError, WeComError

__all__ = ["WXBizJsonMsgCrypt", "WXBizMsgCrypt", "FormatException", "WXBizMsgCrypt_OK"]

#: The sample's success code.
WXBizMsgCrypt_OK = 0
#: The sample raises ``FormatException`` for a bad key; ours is :class:`AESKeyError`.
FormatException = AESKeyError

_T = TypeVar("_T")


def _as_code(call: Callable[[], _T]) -> tuple[int, _T | None]:
    try:
        return WXBizMsgCrypt_OK, call()
    except WeComError as exc:
        return exc.code, None


class WXBizMsgCrypt:
    """The official XML ``WXBizMsgCrypt`` API over :class:`WeComCrypto`.

    :raises AESKeyError: (alias ``FormatException``) the EncodingAESKey is malformed.
    """

    _format: EnvelopeFormat = "xml"

    def __init__(self, sToken: str, sEncodingAESKey: str, sReceiveId: str) -> None:
        self._crypto = WeComCrypto(sToken, sEncodingAESKey, sReceiveId)

    def VerifyURL(
        self, sMsgSignature: str, sTimeStamp: str, sNonce: str, sEchoStr: str
    ) -> tuple[int, bytes | None]:
        """Check a URL-verification request; return ``(0, echo plaintext)`` or ``(code, None)``."""
        return _as_code(
            lambda: (
                self._crypto.verify_and_decrypt(
                    sEchoStr, sMsgSignature, sTimeStamp, sNonce
                ).plaintext
            )
        )

    def DecryptMsg(
        self, sPostData: str | bytes, sMsgSignature: str, sTimeStamp: str, sNonce: str
    ) -> tuple[int, bytes | None]:
        """Verify and decrypt a callback body; return ``(0, plaintext)`` or ``(code, None)``."""
        return _as_code(
            lambda: self._crypto.decrypt_message(sPostData, sMsgSignature, sTimeStamp, sNonce)
        )

    def EncryptMsg(
        self, sReplyMsg: str | bytes, sNonce: str, timestamp: str | None = None
    ) -> tuple[int, str | None]:
        """Encrypt a reply; return ``(0, envelope)`` or ``(code, None)``."""
        return _as_code(
            lambda: self._crypto.encrypt_message(sReplyMsg, sNonce, timestamp, format=self._format)
        )


class WXBizJsonMsgCrypt(WXBizMsgCrypt):
    """The official JSON ``WXBizJsonMsgCrypt`` API: JSON bodies in, JSON envelopes out.

    The reply envelope's timestamp is a JSON number, as doc 101033 shows (the
    official python library writes a string).
    """

    _format = "json"
