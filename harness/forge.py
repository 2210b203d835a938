"""Forged callbacks for the attack corpus, the fuzz tests and the benches.

:class:`~flask_wecom.testing.CallbackSigner` builds well-formed callbacks and breaks one field
at a time. An attacker goes further: a valid signature over any ciphertext string, or a valid
encryption of a buffer whose padding or length prefix lies. These helpers build those from the
public primitives (:func:`~flask_wecom.crypto.signature`,
:func:`~flask_wecom.crypto.decode_aes_key`) so that each check of the decoder, not the
signature check, is what refuses them.
"""

from __future__ import annotations

import base64

from Crypto.Cipher import AES

from flask_wecom.crypto import BLOCK_SIZE, decode_aes_key
from flask_wecom.envelope import EnvelopeFormat
from flask_wecom.testing import CallbackSigner, SignedRequest

#: Credentials of the attack corpus: distinctive, so a leak into a log is easy to spot.
TOKEN = "atkToken5pQw9zRv"
KEY = "SXqStj1J46LvHzQEI6kUwoz4Jz903FqaeiJamDcU1wj"
CORP_ID = "ww-attack-corp"
#: Every callback plaintext the corpus sends carries this, so a plaintext leak is easy to spot.
MARKER = "plaintext-marker-7Kq"
#: The environment that configures the example app with these credentials.
ENV = {"WECOM_TOKEN": TOKEN, "WECOM_ENCODING_AES_KEY": KEY, "WECOM_CORP_ID": CORP_ID}

_PREFIX = bytes(range(16))


def frame(message: bytes, receive_id: str = CORP_ID, *, length: int | None = None) -> bytes:
    """``prefix || len(message) || message || receive_id``; ``length`` overrides the prefix."""
    size = len(message) if length is None else length
    return _PREFIX + size.to_bytes(4, "big") + message + receive_id.encode("utf-8")


def pad(data: bytes) -> bytes:
    """PKCS#7 padding to 32-byte blocks, as WeCom does."""
    k = BLOCK_SIZE - len(data) % BLOCK_SIZE
    return data + bytes((k,)) * k


def encrypt_raw(padded: bytes, key: str = KEY) -> str:
    """AES-256-CBC of ``padded`` exactly as given (no padding added), base64-encoded.

    ``padded`` must be a multiple of 16 bytes long; its padding and framing may lie.
    """
    aes_key = decode_aes_key(key)
    cipher = AES.new(aes_key, AES.MODE_CBC, aes_key[:16])
    return base64.b64encode(cipher.encrypt(padded)).decode("ascii")


def signed_post(
    encrypted: str,
    *,
    token: str = TOKEN,
    envelope: EnvelopeFormat = "xml",
    timestamp: int | None = None,
    nonce: str = "1234567890",
) -> SignedRequest:
    """A POST whose ``msg_signature`` is valid for ``encrypted``, whatever ``encrypted`` holds.

    :param envelope: ``"xml"`` (CDATA, so ``encrypted`` must not hold ``]]>`` to stay well
        formed) or ``"json"`` (any string).
    """
    signer = CallbackSigner(token, KEY, CORP_ID)
    return signer.with_ciphertext(encrypted, format=envelope, timestamp=timestamp, nonce=nonce)
