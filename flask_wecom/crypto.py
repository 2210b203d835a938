"""WeCom callback cryptography (WXBizMsgCrypt), byte-compatible with the official library.

The scheme (doc 90968 加解密方案说明)::

    msg_signature = sha1(sorted([token, timestamp, nonce, ciphertext]) joined)
    plaintext     = random(16) || len(msg) as 4 bytes big-endian || msg || receive_id
    ciphertext    = base64(AES-256-CBC(key, iv=key[:16], PKCS#7 padded to 32-byte blocks))

Usage::

    crypto = WeComCrypto(token, encoding_aes_key, receive_id=corp_id)
    echo = crypto.verify_url(msg_signature, timestamp, nonce, echostr)
    xml = crypto.decrypt_message(body, msg_signature, timestamp, nonce)
    reply_body = crypto.encrypt_message(reply_xml, nonce)

Pure: bytes in, bytes out. Imports the standard library, pycryptodome and the
package's errors and envelope helpers; nothing from the web.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NamedTuple

from Crypto.Cipher import AES

from .envelope import EnvelopeFormat, extract_encrypted, render_envelope
from .errors import (
    AESKeyError,
    Base64DecodeError,
    DecryptError,
    EncryptError,
    IllegalBufferError,
    ReceiveIdError,
    SignatureError,
)

__all__ = [
    "BLOCK_SIZE",
    "Decrypted",
    "WeComCrypto",
    "decode_aes_key",
    "decrypt_media",
    "signature",
]

#: WeCom pads to 32-byte blocks (PKCS#7 with k in 1..32), not AES's 16.
BLOCK_SIZE = 32

_KEY_PATTERN = re.compile(r"[A-Za-z0-9+/]{43}")
_PREFIX_LENGTH = 16
_HEADER_LENGTH = _PREFIX_LENGTH + 4
_MAX_MESSAGE = 2**32 - 1


def decrypt_media(data: bytes, aeskey: str) -> bytes:
    """Decrypt a file an AI bot downloaded with its per-message ``aeskey`` (长连接 media).

    AES-256-CBC with IV = the key's first 16 bytes, PKCS#7 padding to 32-byte blocks, and
    no framing. The base64 key may lack its ``=`` padding.

    :raises DecryptError: the key is not 32 bytes of base64, or the data or padding is bad.
    """
    try:
        key = base64.b64decode(aeskey + "=" * (-len(aeskey) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise Base64DecodeError("the media aeskey is not valid base64") from exc
    if len(key) != 32:
        raise DecryptError(f"the media aeskey decodes to {len(key)} bytes, not 32")
    if not data or len(data) % 16:
        raise DecryptError(f"media length {len(data)} is not a positive multiple of 16")
    padded = AES.new(key, AES.MODE_CBC, key[:16]).decrypt(data)
    pad = padded[-1]
    if not 1 <= pad <= BLOCK_SIZE or padded[-pad:] != bytes((pad,)) * pad:
        raise IllegalBufferError("bad PKCS#7 padding in the media file")
    return padded[:-pad]


def signature(token: str, timestamp: str, nonce: str, encrypted: str) -> str:
    """Return the lower-case hex ``msg_signature`` over the four strings.

    The strings are sorted as strings (never numerically), concatenated and
    hashed with SHA-1, exactly as the official library does.
    """
    joined = "".join(sorted((token, timestamp, nonce, encrypted)))
    return hashlib.sha1(joined.encode("utf-8", "surrogatepass")).hexdigest()  # noqa: S324 - WeCom's scheme


def decode_aes_key(encoding_aes_key: str) -> bytes:
    """Decode a 43-character EncodingAESKey into the 32-byte AES key.

    Decoding is lenient about the two unused low bits of the last character
    (real keys often set them) and strict about everything else.

    :raises AESKeyError: the key is not 43 characters of the base64 alphabet.
    """
    if not isinstance(encoding_aes_key, str):
        raise AESKeyError("EncodingAESKey must be a str of 43 characters")
    if len(encoding_aes_key) != 43:
        raise AESKeyError(
            f"EncodingAESKey must be 43 characters long, got {len(encoding_aes_key)}; "
            "copy it again from the callback settings page (接收消息服务器配置)"
        )
    if not _KEY_PATTERN.fullmatch(encoding_aes_key):
        raise AESKeyError("EncodingAESKey may contain only A-Z, a-z, 0-9, '+' and '/'")
    return base64.b64decode(encoding_aes_key + "=")


class _ReusedCBC:
    """AES-CBC with IV = key[:16] through cipher objects made once per key.

    Making a cipher object costs more than encrypting a whole callback. Decryption
    needs no chaining state (P_i = D(C_i) xor C_(i-1)), so one ECB object decrypts a
    message in a single call. Encryption keeps one CBC object and lets it chain on
    from the previous message: CBC only feeds the previous ciphertext block into the
    first block of the next call, so that block is corrected by ``iv xor chain``. The
    output is byte for byte what a fresh cipher gives; a lock keeps the chain
    consistent across threads.
    """

    def __init__(self, key: bytes) -> None:
        self._iv_bytes = key[:16]
        self._iv = int.from_bytes(self._iv_bytes, "big")
        self._ecb = AES.new(key, AES.MODE_ECB)
        self._encryptor = AES.new(key, AES.MODE_CBC, self._iv_bytes)
        self._encrypt_chain = self._iv
        self._encrypt_lock = threading.Lock()

    def encrypt(self, padded: bytes) -> bytes:
        """Encrypt whole blocks as a fresh CBC cipher with IV = key[:16] would."""
        with self._encrypt_lock:
            first = int.from_bytes(padded[:16], "big") ^ self._iv ^ self._encrypt_chain
            out = self._encryptor.encrypt(first.to_bytes(16, "big") + padded[16:])
            self._encrypt_chain = int.from_bytes(out[-16:], "big")
        return out

    def decrypt(self, data: bytes) -> bytes:
        """Decrypt whole blocks as a fresh CBC cipher with IV = key[:16] would."""
        decrypted = int.from_bytes(self._ecb.decrypt(data), "big")
        previous = int.from_bytes(self._iv_bytes + data[:-16], "big")
        return (decrypted ^ previous).to_bytes(len(data), "big")


class Decrypted(NamedTuple):
    """A verified and decrypted callback: the message and the receive id it carried."""

    #: The message exactly as WeCom encrypted it (UTF-8 XML or JSON for callbacks).
    plaintext: bytes
    #: The receive id found after the message (one of the accepted ids).
    receive_id: str


class WeComCrypto:
    """Signs, verifies, encrypts and decrypts WeCom callbacks for one credential set.

    :param token: the Token from the callback settings (used only in signatures).
    :param encoding_aes_key: the 43-character EncodingAESKey.
    :param receive_id: the accepted receive id, or several: the CorpID for a
        self-built app, the SuiteID for suite command callbacks, ``""`` for AI
        bots. It is compared with the id inside each ciphertext, never with the
        envelope's ``ToUserName``. The first one is used when encrypting.
    :param random_bytes: ``random_bytes(16)`` gives the random prefix of each
        encrypted message; defaults to :func:`secrets.token_bytes`.
    :param clock: gives the reply timestamp in seconds; defaults to :func:`time.time`.
    :raises AESKeyError: the EncodingAESKey is malformed.
    :raises ValueError: the token or receive ids are unusable.
    """

    def __init__(
        self,
        token: str,
        encoding_aes_key: str,
        receive_id: str | Iterable[str] = "",
        *,
        random_bytes: Callable[[int], bytes] | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        if not isinstance(token, str) or not token:
            raise ValueError("token must be a non-empty str (the Token from the callback settings)")
        receive_ids = (receive_id,) if isinstance(receive_id, str) else tuple(receive_id)
        if not receive_ids or not all(isinstance(rid, str) for rid in receive_ids):
            raise ValueError("receive_id must be a str or a non-empty iterable of str")
        #: The Token.
        self.token = token
        #: The accepted receive ids, in the order given; the first is used to encrypt.
        self.receive_ids: tuple[str, ...] = receive_ids
        self._accepted = {rid.encode("utf-8"): rid for rid in receive_ids}
        self._key = decode_aes_key(encoding_aes_key)
        self._cbc = _ReusedCBC(self._key)
        self._random_bytes = random_bytes or secrets.token_bytes
        self._clock = clock or time.time

    def __repr__(self) -> str:
        return f"WeComCrypto(receive_ids={self.receive_ids!r})"

    # -- signatures -------------------------------------------------------------

    def check_signature(
        self, msg_signature: str, timestamp: str, nonce: str, encrypted: str
    ) -> None:
        """Raise :class:`SignatureError` unless ``msg_signature`` signs ``encrypted``.

        The comparison takes constant time.
        """
        expected = signature(self.token, timestamp, nonce, encrypted)
        if not (msg_signature.isascii() and hmac.compare_digest(expected, msg_signature)):
            raise SignatureError("msg_signature does not match", timestamp=timestamp, nonce=nonce)

    def derive_key(self, label: bytes) -> bytes:
        """A 32-byte secret for ``label``, derived from the EncodingAESKey (HMAC-SHA256).

        For identifiers that must not be guessable from what they identify, such as
        the store keys of the retry dedup.
        """
        return hmac.new(self._key, b"flask_wecom:" + label, hashlib.sha256).digest()

    # -- decryption -------------------------------------------------------------

    def decrypt(self, encrypted: str) -> tuple[bytes, str]:
        """Decrypt a ciphertext without checking any signature.

        :returns: the message and the receive id it carried.
        :raises DecryptError: (or a subclass) for every malformed input.
        """
        try:
            data = base64.b64decode(encrypted, validate=True)
        except (binascii.Error, ValueError, TypeError) as exc:
            raise Base64DecodeError("the ciphertext is not valid base64") from exc
        if not data or len(data) % 16:
            raise DecryptError(f"ciphertext length {len(data)} is not a positive multiple of 16")
        padded = self._cbc.decrypt(data)
        pad = padded[-1]
        if not 1 <= pad <= BLOCK_SIZE or padded[-pad:] != bytes((pad,)) * pad:
            raise IllegalBufferError("bad PKCS#7 padding")
        end = len(padded) - pad
        if end < _HEADER_LENGTH:
            raise IllegalBufferError("the decrypted buffer is shorter than its header")
        length = int.from_bytes(padded[_PREFIX_LENGTH:_HEADER_LENGTH], "big")
        if _HEADER_LENGTH + length > end:
            raise IllegalBufferError("the length prefix exceeds the decrypted buffer")
        receive_id = self._accepted.get(padded[_HEADER_LENGTH + length : end])
        if receive_id is None:
            raise ReceiveIdError("the receive id in the ciphertext is not an accepted one")
        return padded[_HEADER_LENGTH : _HEADER_LENGTH + length], receive_id

    def verify_and_decrypt(
        self, encrypted: str, msg_signature: str, timestamp: str, nonce: str
    ) -> Decrypted:
        """Check the signature over ``encrypted``, then decrypt it.

        :raises SignatureError: the signature does not match (checked first).
        :raises DecryptError: (or a subclass) the ciphertext is malformed.
        """
        self.check_signature(msg_signature, timestamp, nonce, encrypted)
        try:
            plaintext, receive_id = self.decrypt(encrypted)
        except DecryptError as exc:
            exc.timestamp, exc.nonce = timestamp, nonce
            raise
        return Decrypted(plaintext, receive_id)

    def verify_url(self, msg_signature: str, timestamp: str, nonce: str, echostr: str) -> str:
        """Answer the callback URL check (GET): return the text to echo back.

        ``echostr`` must already be URL-decoded once (WSGI query parsing does it).

        :raises SignatureError: the signature does not match.
        :raises DecryptError: (or a subclass) ``echostr`` is malformed or not UTF-8.
        """
        plaintext = self.verify_and_decrypt(echostr, msg_signature, timestamp, nonce).plaintext
        try:
            return plaintext.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise IllegalBufferError(
                "the echostr plaintext is not UTF-8", timestamp=timestamp, nonce=nonce
            ) from exc

    def decrypt_message(
        self,
        body: bytes | str | Mapping[str, Any],
        msg_signature: str,
        timestamp: str,
        nonce: str,
    ) -> bytes:
        """Verify and decrypt a callback (POST) body; return the plaintext exactly as sent.

        :param body: the raw body, XML (``<Encrypt>``) or JSON (``encrypt`` or
            ``Encrypt``), as bytes or text, or an already parsed mapping.
        :raises ParseError: the envelope is malformed.
        :raises SignatureError: the signature does not match.
        :raises DecryptError: (or a subclass) the ciphertext is malformed.
        """
        encrypted = extract_encrypted(body)
        return self.verify_and_decrypt(encrypted, msg_signature, timestamp, nonce).plaintext

    # -- encryption -------------------------------------------------------------

    def encrypt(self, plaintext: bytes | str, receive_id: str | None = None) -> str:
        """Encrypt ``plaintext`` for WeCom; return the base64 ciphertext.

        :param receive_id: the id to append; defaults to the first accepted one.
        :raises EncryptError: the message is too long or the random source is broken.
        """
        message = plaintext.encode("utf-8") if isinstance(plaintext, str) else plaintext
        if len(message) > _MAX_MESSAGE:
            raise EncryptError("the message does not fit the 4-byte length prefix")
        prefix = self._random_bytes(_PREFIX_LENGTH)
        if len(prefix) != _PREFIX_LENGTH:
            raise EncryptError(f"random_bytes({_PREFIX_LENGTH}) returned {len(prefix)} bytes")
        rid = (self.receive_ids[0] if receive_id is None else receive_id).encode("utf-8")
        body = b"".join((prefix, len(message).to_bytes(4, "big"), message, rid))
        pad = BLOCK_SIZE - len(body) % BLOCK_SIZE
        return base64.b64encode(self._cbc.encrypt(body + bytes((pad,)) * pad)).decode("ascii")

    def encrypt_message(
        self,
        plaintext: bytes | str,
        nonce: str,
        timestamp: str | int | None = None,
        *,
        format: EnvelopeFormat = "xml",
        receive_id: str | None = None,
    ) -> str:
        """Encrypt a passive reply and wrap it in the signed reply envelope.

        :param nonce: the nonce to sign with; AI bots expect the callback's own nonce.
        :param timestamp: seconds; defaults to the clock.
        :param format: ``"xml"`` (apps, suites) or ``"json"`` (AI bots).
        :param receive_id: the id to append; defaults to the first accepted one.
        :raises ValueError: the timestamp is not a whole number of seconds.
        """
        return self.seal(self.encrypt(plaintext, receive_id), nonce, timestamp, format=format)

    def seal(
        self,
        encrypted: str,
        nonce: str,
        timestamp: str | int | None = None,
        *,
        format: EnvelopeFormat = "xml",
    ) -> str:
        """Sign an already encrypted reply for ``nonce`` and ``timestamp``; return the envelope.

        The ciphertext does not depend on the nonce or timestamp, so a stored
        reply can be sealed again for a retried callback.

        :raises ValueError: the timestamp is not a whole number of seconds.
        """
        stamp = str(int(self._clock())) if timestamp is None else str(timestamp)
        if not stamp.isdigit() or not stamp.isascii():
            raise ValueError(f"timestamp must be whole seconds, got {stamp!r}")
        signed = signature(self.token, stamp, nonce, encrypted)
        return render_envelope(encrypted, signed, stamp, nonce, format)
