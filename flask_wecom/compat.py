"""Drop-in replacements for Tencent's sample classes ``WXBizMsgCrypt`` and ``WXBizJsonMsgCrypt``.

A project that copied the official python3 ``WXBizMsgCrypt3.py`` (XML) or
``WXBizJsonMsgCrypt.py`` (JSON) changes one import line::

    from flask_wecom.compat import WXBizMsgCrypt        # or WXBizJsonMsgCrypt

and keeps its ``(ret, value)`` calls and return codes (0, -40001 ... -40011).
Underneath is :class:`~flask_wecom.crypto.WeComCrypto`, so it gains strict
padding checks, constant-time signature checks and typed errors.

Each class behaves like its original, value for value:

============================  =================  ===================
method                        ``WXBizMsgCrypt``  ``WXBizJsonMsgCrypt``
============================  =================  ===================
``VerifyURL``                 bytes              str
``DecryptMsg``                bytes              str
``EncryptMsg``                str (XML)          str (JSON)
============================  =================  ===================

``WXBizJsonMsgCrypt.EncryptMsg`` writes the reply exactly as the official JSON library
does: the same four fields, layout and order, and the timestamp as a JSON *string*. (The
AI-bot replies of :mod:`flask_wecom.aibot` keep the numeric timestamp doc 101033 shows.)
Timestamps may be given as str or int everywhere (the official XML class accepts str only).
This module only translates exceptions into codes.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TypeVar

from .crypto import WeComCrypto
from .errors import AESKeyError, IllegalBufferError, WeComError

__all__ = ["WXBizJsonMsgCrypt", "WXBizMsgCrypt", "FormatException", "WXBizMsgCrypt_OK"]

#: The sample's success code.
WXBizMsgCrypt_OK = 0
#: The sample raises ``FormatException`` for a bad key; ours is :class:`AESKeyError`.
FormatException = AESKeyError

_T = TypeVar("_T")

#: The official JSON library's reply, field for field (callback_json_python3/WXBizJsonMsgCrypt.py).
_JSON_REPLY = """{{
        "encrypt": "{encrypt}",
        "msgsignature": "{signature}",
        "timestamp": "{timestamp}",
        "nonce": {nonce}
    }}"""


def _as_code(call: Callable[[], _T]) -> tuple[int, _T | None]:
    try:
        return WXBizMsgCrypt_OK, call()
    except WeComError as exc:
        return exc.code, None


def _text(plaintext: bytes) -> str:
    """The plaintext as str, as the official JSON library returns it; -40008 if not UTF-8."""
    try:
        return plaintext.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise IllegalBufferError("the plaintext is not UTF-8") from exc


class WXBizMsgCrypt:
    """The official XML ``WXBizMsgCrypt`` API (python3 ``WXBizMsgCrypt3.py``) on WeComCrypto.

    :raises AESKeyError: (alias ``FormatException``) the EncodingAESKey is malformed.
    """

    def __init__(self, sToken: str, sEncodingAESKey: str, sReceiveId: str) -> None:
        self._crypto = WeComCrypto(sToken, sEncodingAESKey, sReceiveId)

    def _verify_url(self, signature: str, timestamp: str | int, nonce: str, echo: str) -> bytes:
        return self._crypto.verify_and_decrypt(echo, signature, str(timestamp), nonce).plaintext

    def _decrypt(
        self, body: str | bytes, signature: str, timestamp: str | int, nonce: str
    ) -> bytes:
        return self._crypto.decrypt_message(body, signature, str(timestamp), nonce)

    def VerifyURL(
        self, sMsgSignature: str, sTimeStamp: str | int, sNonce: str, sEchoStr: str
    ) -> tuple[int, bytes | None]:
        """Check a URL-verification request; return ``(0, echo plaintext)`` or ``(code, None)``."""
        return _as_code(lambda: self._verify_url(sMsgSignature, sTimeStamp, sNonce, sEchoStr))

    def DecryptMsg(
        self, sPostData: str | bytes, sMsgSignature: str, sTimeStamp: str | int, sNonce: str
    ) -> tuple[int, bytes | None]:
        """Verify and decrypt a callback body; return ``(0, plaintext)`` or ``(code, None)``."""
        return _as_code(lambda: self._decrypt(sPostData, sMsgSignature, sTimeStamp, sNonce))

    def EncryptMsg(
        self, sReplyMsg: str | bytes, sNonce: str, timestamp: str | int | None = None
    ) -> tuple[int, str | None]:
        """Encrypt a reply; return ``(0, XML envelope)`` or ``(code, None)``."""
        return _as_code(lambda: self._crypto.encrypt_message(sReplyMsg, sNonce, timestamp))


class WXBizJsonMsgCrypt(WXBizMsgCrypt):
    """The official JSON ``WXBizJsonMsgCrypt`` API (python3): JSON bodies in, JSON replies out.

    Plaintexts are returned as str, and the reply's timestamp is a JSON string, as the
    official library does (see the module docstring).
    """

    def VerifyURL(  # type: ignore[override]  # str, as the official JSON class returns
        self, sMsgSignature: str, sTimeStamp: str | int, sNonce: str, sEchoStr: str
    ) -> tuple[int, str | None]:
        """Check a URL-verification request; return ``(0, echo text)`` or ``(code, None)``."""
        return _as_code(
            lambda: _text(self._verify_url(sMsgSignature, sTimeStamp, sNonce, sEchoStr))
        )

    def DecryptMsg(  # type: ignore[override]  # str, as the official JSON class returns
        self, sPostData: str | bytes, sMsgSignature: str, sTimeStamp: str | int, sNonce: str
    ) -> tuple[int, str | None]:
        """Verify and decrypt a JSON body; return ``(0, plaintext)`` or ``(code, None)``."""
        return _as_code(lambda: _text(self._decrypt(sPostData, sMsgSignature, sTimeStamp, sNonce)))

    def EncryptMsg(
        self, sReplyMsg: str | bytes, sNonce: str, timestamp: str | int | None = None
    ) -> tuple[int, str | None]:
        """Encrypt a reply; return ``(0, JSON envelope)`` or ``(code, None)``."""
        return _as_code(lambda: self._json_reply(sReplyMsg, sNonce, timestamp))

    def _json_reply(self, reply: str | bytes, nonce: str, timestamp: str | int | None) -> str:
        # The core's JSON envelope holds the same four signed values; write them the official way.
        envelope = json.loads(self._crypto.encrypt_message(reply, nonce, timestamp, format="json"))
        return _JSON_REPLY.format(
            encrypt=envelope["encrypt"],
            signature=envelope["msgsignature"],
            timestamp=envelope["timestamp"],
            nonce=json.dumps(nonce, ensure_ascii=False),
        )
