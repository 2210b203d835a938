"""flask_wecom.crypto: known-answer vectors, round trips, and every malformed input."""

from __future__ import annotations

import ast
import base64
import hashlib
import hmac
import inspect
import json
from collections.abc import Callable
from functools import partial
from typing import Any

import pytest
from Crypto.Cipher import AES
from hypothesis import given, settings
from hypothesis import strategies as st

from flask_wecom import crypto as crypto_module
from flask_wecom.crypto import BLOCK_SIZE, WeComCrypto, decode_aes_key, decrypt_media, signature
from flask_wecom.envelope import (
    MAX_XML_FALLBACK,
    ReplyEnvelope,
    extract_encrypted,
    read_reply_envelope,
    render_envelope,
)
from flask_wecom.errors import (
    AESKeyError,
    Base64DecodeError,
    DecryptError,
    EncryptError,
    IllegalBufferError,
    ParseError,
    PayloadTooLarge,
    ReceiveIdError,
    SignatureError,
    WeComError,
)
from flask_wecom.safe_xml import MAX_XML_BYTES
from tests.support.vectors import CORP_ID, KEY, TOKEN, load, vector_params


def crypto_for(vector: dict[str, Any], **kwargs: Any) -> WeComCrypto:
    """A WeComCrypto for a vector, with its random prefix pinned."""
    prefix = bytes.fromhex(vector["random_prefix_hex"]) if "random_prefix_hex" in vector else None
    return WeComCrypto(
        vector["token"],
        vector["encoding_aes_key"],
        vector["receive_id"],
        random_bytes=(lambda n: prefix) if prefix else None,
        **kwargs,
    )


def body_of(vector: dict[str, Any]) -> str | dict[str, str]:
    """The POST body a vector gives, or a JSON envelope around its ciphertext."""
    post_data: str | None = vector.get("post_data")
    return post_data if post_data is not None else {"encrypt": vector["encrypt"]}


make_crypto = partial(WeComCrypto, TOKEN, KEY, CORP_ID)


# -- known answers --------------------------------------------------------------------------


@pytest.mark.parametrize("vector", vector_params("public", "aibot", kind="verify_url"))
def test_verify_url_vectors(vector: dict[str, Any]) -> None:
    crypto = crypto_for(vector)
    echo = crypto.verify_url(
        vector["msg_signature"], vector["timestamp"], vector["nonce"], vector["echostr"]
    )
    assert echo == vector["expected_plaintext"]


@pytest.mark.parametrize("vector", vector_params("public", "aibot", kind="decrypt"))
def test_decrypt_message_vectors(vector: dict[str, Any]) -> None:
    crypto = crypto_for(vector)
    plaintext = crypto.decrypt_message(
        body_of(vector), vector["msg_signature"], vector["timestamp"], vector["nonce"]
    )
    assert plaintext == vector["expected_plaintext"].encode("utf-8")


@pytest.mark.parametrize("vector", vector_params("public", "aibot"))
def test_encryption_reproduces_vector_bytes(vector: dict[str, Any]) -> None:
    """With the random prefix pinned, encryption gives back the published ciphertext."""
    crypto = crypto_for(vector, clock=lambda: float(vector["timestamp"]))
    ciphertext = vector.get("echostr") or vector["encrypt"]
    plaintext = vector["expected_plaintext"].encode("utf-8")
    assert crypto.encrypt(plaintext) == ciphertext
    envelope = crypto.encrypt_message(plaintext, vector["nonce"])
    assert extract_encrypted(envelope) == ciphertext
    assert f"<MsgSignature><![CDATA[{vector['msg_signature']}]]>" in envelope


@pytest.mark.parametrize("vector", vector_params("public"))
def test_pad_byte_matches_vector(vector: dict[str, Any]) -> None:
    """Padding is to 32-byte blocks: the published pad bytes (22, 30 ...) come out."""
    ciphertext = base64.b64decode(vector.get("echostr") or vector["encrypt"])
    key = decode_aes_key(vector["encoding_aes_key"])
    padded = AES.new(key, AES.MODE_CBC, key[:16]).decrypt(ciphertext)
    assert padded[-1] == vector["pkcs7_pad_byte"]
    assert len(ciphertext) == vector["ciphertext_bytes"]


@pytest.mark.parametrize("vector", vector_params("negative"))
def test_negative_vectors(vector: dict[str, Any]) -> None:
    crypto = crypto_for(vector)
    with pytest.raises(WeComError) as caught:
        crypto.decrypt_message(
            body_of(vector), vector["msg_signature"], vector["timestamp"], vector["nonce"]
        )
    assert caught.value.code == vector["expected_error"]


def test_signature_sorts_as_strings() -> None:
    """Sorted lexicographically, never numerically: '10' sorts before '9'."""
    assert signature("9", "10", "a", "B") == signature("B", "a", "10", "9")
    import hashlib

    assert signature("9", "10", "a", "B") == hashlib.sha1(b"109Ba").hexdigest()


def test_receive_id_never_comes_from_the_envelope() -> None:
    """The JSON sample's envelope says wx5823…, the ciphertext carries ww1436…: the latter wins."""
    vector = load("public")[2]
    assert "wx5823bf96d3bd56c7" in vector["post_data"]
    plaintext = crypto_for(vector).decrypt_message(
        vector["post_data"], vector["msg_signature"], vector["timestamp"], vector["nonce"]
    )
    assert plaintext == vector["expected_plaintext"].encode()


# -- keys and configuration ------------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [
        pytest.param(KEY[:-1], id="42-chars"),
        pytest.param(KEY + "A", id="44-chars"),
        pytest.param(KEY[:-1] + "=", id="stray-padding"),
        pytest.param(KEY[:-1] + "-", id="urlsafe-char"),
        pytest.param(KEY[:-1] + "é", id="non-ascii"),
        pytest.param("", id="empty"),
    ],
)
def test_malformed_keys_raise_at_construction(key: str) -> None:
    with pytest.raises(AESKeyError) as caught:
        WeComCrypto(TOKEN, key, CORP_ID)
    assert caught.value.code == -40004
    assert isinstance(caught.value, ValueError)


def test_key_spare_bits_are_ignored() -> None:
    """...1aR and the canonical ...1aQ decode to the same 32 bytes."""
    assert decode_aes_key("abcdefghijklmnopqrstuvwxyz0123456789ABCD1aR") == decode_aes_key(
        "abcdefghijklmnopqrstuvwxyz0123456789ABCD1aQ"
    )


@pytest.mark.parametrize(
    ("token", "receive_id"),
    [
        pytest.param("", CORP_ID, id="empty-token"),
        pytest.param(TOKEN, [], id="no-receive-ids"),
        pytest.param(TOKEN, [CORP_ID, 5], id="non-str-receive-id"),
    ],
)
def test_bad_configuration_raises(token: str, receive_id: Any) -> None:
    with pytest.raises(ValueError, match=r"token|receive_id"):
        WeComCrypto(token, KEY, receive_id)


def test_receive_id_allowlist() -> None:
    """Several accepted ids: the one inside the ciphertext is reported."""
    suite = make_crypto()
    crypto = WeComCrypto(TOKEN, KEY, ["suite-id", CORP_ID, ""])
    assert crypto.decrypt(suite.encrypt(b"hi")) == (b"hi", CORP_ID)
    assert crypto.decrypt(crypto.encrypt(b"hi", "")) == (b"hi", "")
    assert crypto.decrypt(crypto.encrypt(b"hi")) == (b"hi", "suite-id")
    with pytest.raises(ReceiveIdError):
        make_crypto().decrypt(crypto.encrypt(b"hi", "other"))


def test_default_receive_id_is_empty() -> None:
    """Without a receive id (AI bots), "" is the one accepted and the one appended."""
    bot = WeComCrypto(TOKEN, KEY)
    assert bot.receive_ids == ("",)
    ciphertext = bot.encrypt(b"hi")
    raw = AES.new(decode_aes_key(KEY), AES.MODE_CBC, decode_aes_key(KEY)[:16]).decrypt(
        base64.b64decode(ciphertext)
    )
    assert raw[20:22] == b"hi" and raw[22] == raw[-1] == BLOCK_SIZE - 22  # no id before the pad
    assert bot.decrypt(ciphertext) == (b"hi", "")
    with pytest.raises(ReceiveIdError):
        bot.decrypt(make_crypto().encrypt(b"hi"))
    with pytest.raises(ReceiveIdError):
        make_crypto().decrypt(ciphertext)


@pytest.mark.parametrize("format", ["xml", "json"])
def test_encrypt_message_appends_the_given_receive_id(format: Any) -> None:
    crypto = WeComCrypto(TOKEN, KEY, [CORP_ID, "suite-id"])
    envelope = crypto.encrypt_message("<xml/>", "n", "1", format=format, receive_id="suite-id")
    assert crypto.decrypt(extract_encrypted(envelope)) == (b"<xml/>", "suite-id")
    default = crypto.encrypt_message("<xml/>", "n", "1", format=format)
    assert crypto.decrypt(extract_encrypted(default)) == (b"<xml/>", CORP_ID)
    with pytest.raises(ReceiveIdError):
        make_crypto().decrypt(extract_encrypted(envelope))


# -- round trips --------------------------------------------------------------------------------

receive_ids = st.text(max_size=40)
xml_text = st.text(
    alphabet=st.sampled_from("\t\n\r")
    | st.characters(min_codepoint=0x20, codec="utf-8", exclude_characters="\ufffe\uffff"),
    max_size=32,
)
tokens = st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), min_size=1)


@settings(max_examples=150, deadline=None)
@given(
    key=st.binary(min_size=32, max_size=32),
    token=tokens,
    receive_id=receive_ids,
    message=st.binary(max_size=4096),
    timestamp=st.integers(min_value=0, max_value=2**40),
    nonce=xml_text,
    format=st.sampled_from(["xml", "json"]),
)
def test_round_trip(
    key: bytes,
    token: str,
    receive_id: str,
    message: bytes,
    timestamp: int,
    nonce: str,
    format: Any,
) -> None:
    encoding_aes_key = base64.b64encode(key).decode()[:-1]
    crypto = WeComCrypto(token, encoding_aes_key, receive_id)
    envelope = crypto.encrypt_message(message, nonce, timestamp, format=format)
    parsed = json.loads(envelope) if format == "json" else None
    sig = parsed["msgsignature"] if parsed else envelope.split("CDATA[")[2].split("]]")[0]
    assert crypto.decrypt_message(envelope, sig, str(timestamp), nonce) == message


@pytest.mark.parametrize(
    "length",
    [0, 1, 11, 12, 13, 31, 32, 33, 64, 100_000, 100 * 1024],
)
def test_round_trip_lengths(length: int) -> None:
    """Every padding length, including the full 32-byte pad block, and 100 KB messages."""
    crypto = WeComCrypto(TOKEN, KEY, "")
    message = bytes(range(256)) * (length // 256) + bytes(range(length % 256))
    ciphertext = crypto.encrypt(message)
    assert len(base64.b64decode(ciphertext)) % BLOCK_SIZE == 0
    assert crypto.decrypt(ciphertext) == (message, "")


def test_full_pad_block() -> None:
    """16 + 4 + 12 bytes with an empty receive id is exactly 32: a whole block of 0x20 follows."""
    crypto = WeComCrypto(TOKEN, KEY, "")
    raw = base64.b64decode(crypto.encrypt(b"123456789012"))
    key = decode_aes_key(KEY)
    padded = AES.new(key, AES.MODE_CBC, key[:16]).decrypt(raw)
    assert len(padded) == 64
    assert padded[32:] == bytes([32]) * 32


def test_non_ascii_receive_id_and_byte_length_prefix() -> None:
    crypto = WeComCrypto(TOKEN, KEY, "企业")
    assert crypto.decrypt(crypto.encrypt("你好")) == ("你好".encode(), "企业")


def test_default_random_prefix_differs() -> None:
    crypto = make_crypto()
    assert crypto.encrypt(b"same") != crypto.encrypt(b"same")


def test_seal_writes_the_xml_envelope_by_default() -> None:
    crypto = make_crypto()
    ciphertext = crypto.encrypt(b"<xml/>")
    sealed = crypto.seal(ciphertext, "n1", "17")
    assert sealed == render_envelope(
        ciphertext, signature(TOKEN, "17", "n1", ciphertext), "17", "n1"
    )


def test_reply_timestamp_from_clock() -> None:
    crypto = make_crypto(clock=lambda: 1700000000.9)
    assert "<TimeStamp>1700000000</TimeStamp>" in crypto.encrypt_message(b"x", "n")
    assert json.loads(crypto.encrypt_message(b"x", "n", format="json"))["timestamp"] == 1700000000


@pytest.mark.parametrize("timestamp", ["12a", "-1", "１２", ""])
def test_reply_timestamp_must_be_digits(timestamp: str) -> None:
    with pytest.raises(ValueError, match="timestamp"):
        make_crypto().encrypt_message(b"x", "n", timestamp)


def test_nonce_with_cdata_terminator_stays_in_its_element() -> None:
    from flask_wecom.safe_xml import parse_xml

    envelope = make_crypto().encrypt_message(b"x", "a]]>b", 1)
    assert parse_xml(envelope).findtext("Nonce") == "a]]>b"


def test_nonce_xml_cannot_carry_is_refused_for_xml_only() -> None:
    crypto = make_crypto()
    with pytest.raises(ValueError, match="U\\+0001"):
        crypto.encrypt_message(b"x", "a\x01", 1)
    assert json.loads(crypto.encrypt_message(b"x", "a\x01", 1, format="json"))["nonce"] == "a\x01"


@pytest.mark.parametrize(
    ("random_bytes", "expected"),
    [
        pytest.param(lambda n: b"short", EncryptError, id="short-random"),
        pytest.param(lambda n: b"x" * 17, EncryptError, id="long-random"),
    ],
)
def test_broken_random_source(random_bytes: Callable[[int], bytes], expected: type) -> None:
    with pytest.raises(expected):
        make_crypto(random_bytes=random_bytes).encrypt(b"x")


# -- malformed input table ------------------------------------------------------------------------


def raw_ciphertext(padded: bytes) -> str:
    """Encrypt an exact buffer (already padded) with the test key, bypassing the framing."""
    key = decode_aes_key(KEY)
    return base64.b64encode(AES.new(key, AES.MODE_CBC, key[:16]).encrypt(padded)).decode()


def framed(
    message: bytes, receive_id: bytes = CORP_ID.encode(), *, length: int | None = None
) -> bytes:
    """Prefix, length, message and receive id, without padding."""
    size = len(message) if length is None else length
    return b"R" * 16 + size.to_bytes(4, "big") + message + receive_id


def padded(buffer: bytes, pad: int | None = None, fill: int | None = None) -> bytes:
    """Pad ``buffer`` to 32 bytes with a chosen pad byte and fill."""
    k = BLOCK_SIZE - len(buffer) % BLOCK_SIZE if pad is None else pad
    count = BLOCK_SIZE - len(buffer) % BLOCK_SIZE
    return buffer + bytes([k if fill is None else fill]) * (count - 1) + bytes([k])


MALFORMED = [
    pytest.param("", DecryptError, -40007, id="empty"),
    pytest.param("not base64!", Base64DecodeError, -40010, id="bad-base64-chars"),
    pytest.param("QUJD", DecryptError, -40007, id="3-bytes"),
    pytest.param("QUJDRA=", Base64DecodeError, -40010, id="bad-base64-padding"),
    pytest.param("QUJD\nRA==", Base64DecodeError, -40010, id="newline-inside"),
    pytest.param("5L2g5aW9", DecryptError, -40007, id="not-block-multiple"),
    pytest.param("密文", Base64DecodeError, -40010, id="non-ascii"),
    pytest.param(
        raw_ciphertext(padded(framed(b"hi"), pad=0)), IllegalBufferError, -40008, id="pad-0"
    ),
    pytest.param(
        raw_ciphertext(padded(framed(b"hi"), pad=33)), IllegalBufferError, -40008, id="pad-33"
    ),
    pytest.param(
        raw_ciphertext(padded(framed(b"hi"), pad=255)), IllegalBufferError, -40008, id="pad-255"
    ),
    pytest.param(
        raw_ciphertext(padded(framed(b"hi"), fill=1)),
        IllegalBufferError,
        -40008,
        id="pad-bytes-unequal",
    ),
    pytest.param(
        raw_ciphertext(bytes([16]) * 32), IllegalBufferError, -40008, id="shorter-than-header"
    ),
    pytest.param(
        raw_ciphertext(padded(framed(b"hi", length=2**32 - 1))),
        IllegalBufferError,
        -40008,
        id="length-prefix-too-long",
    ),
    pytest.param(
        raw_ciphertext(padded(framed(b"hi", length=3))),
        ReceiveIdError,
        -40005,
        id="length-off-by-one",
    ),
    pytest.param(
        raw_ciphertext(padded(framed(b"hi", b"other"))), ReceiveIdError, -40005, id="other-id"
    ),
    pytest.param(raw_ciphertext(padded(framed(b"hi", b""))), ReceiveIdError, -40005, id="empty-id"),
    pytest.param(
        raw_ciphertext(padded(framed(b"hi", CORP_ID.encode() + b"\0"))),
        ReceiveIdError,
        -40005,
        id="id-with-trailing-nul",
    ),
]


@pytest.mark.parametrize(("ciphertext", "error", "code"), MALFORMED)
def test_malformed_ciphertext(ciphertext: str, error: type[WeComError], code: int) -> None:
    crypto = make_crypto()
    with pytest.raises(error) as caught:
        crypto.decrypt(ciphertext)
    assert caught.value.code == code
    assert "hi" not in str(caught.value)


@pytest.mark.parametrize(("ciphertext", "error", "code"), MALFORMED)
def test_malformed_ciphertext_behind_valid_signature(
    ciphertext: str, error: type[WeComError], code: int
) -> None:
    """A correctly signed request with a bad ciphertext gets the same typed error, with context."""
    crypto = make_crypto()
    sig = signature(TOKEN, "1", "n", ciphertext)
    with pytest.raises(error) as caught:
        crypto.verify_url(sig, "1", "n", ciphertext)
    assert caught.value.code == code
    assert (caught.value.timestamp, caught.value.nonce) == ("1", "n")


def test_echostr_must_be_utf8() -> None:
    crypto = make_crypto()
    ciphertext = crypto.encrypt(b"\xff\xfe")
    with pytest.raises(IllegalBufferError) as refused:
        crypto.verify_url(signature(TOKEN, "1", "n", ciphertext), "1", "n", ciphertext)
    assert (refused.value.timestamp, refused.value.nonce) == ("1", "n")


def test_errors_carry_the_requests_timestamp_and_nonce() -> None:
    crypto = make_crypto()
    with pytest.raises(SignatureError) as forged:
        crypto.verify_and_decrypt(crypto.encrypt(b"x"), "0" * 40, "17", "nonce-1")
    assert (forged.value.timestamp, forged.value.nonce) == ("17", "nonce-1")
    garbage = "A" * 24
    with pytest.raises(DecryptError) as bad:
        crypto.verify_and_decrypt(
            garbage, signature(TOKEN, "18", "nonce-2", garbage), "18", "nonce-2"
        )
    assert (bad.value.timestamp, bad.value.nonce) == ("18", "nonce-2")


def test_verify_and_decrypt_reports_the_receive_id() -> None:
    crypto = WeComCrypto(TOKEN, KEY, [CORP_ID, "suite-id"])
    ciphertext = crypto.encrypt(b"hi", "suite-id")
    decrypted = crypto.verify_and_decrypt(
        ciphertext, signature(TOKEN, "1", "n", ciphertext), "1", "n"
    )
    assert decrypted == (b"hi", "suite-id") and decrypted.receive_id == "suite-id"


def test_signature_passes_lone_surrogates_through() -> None:
    """WSGI servers hand undecodable query bytes over as surrogates: they sign, never raise."""
    expected = hashlib.sha1(
        "".join(sorted(["t", "1", "n\udcff", "E"])).encode("utf-8", "surrogatepass")
    )
    assert signature("t", "1", "n\udcff", "E") == expected.hexdigest()


def test_every_byte_order_is_spelled_out() -> None:
    """int.from_bytes and int.to_bytes take no default byte order on Python 3.10."""
    source = inspect.getsource(crypto_module)
    if "mutmut" in source:
        pytest.skip("mutation testing: the source holds every mutant (equivalent on 3.11+)")
    tree = ast.parse(source)
    calls = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in ("from_bytes", "to_bytes")
    ]
    assert len(calls) >= 8
    for call in calls:
        order = call.args[1] if len(call.args) > 1 else None
        assert isinstance(order, ast.Constant) and order.value == "big", ast.unparse(call)


def test_derive_key_is_hmac_sha256_of_the_label() -> None:
    crypto = make_crypto()
    expected = hmac.new(decode_aes_key(KEY), b"flask_wecom:dedup", hashlib.sha256).digest()
    assert crypto.derive_key(b"dedup") == expected and len(expected) == 32
    assert crypto.derive_key(b"other") != expected
    other_key = WeComCrypto(TOKEN, "B" * 43, CORP_ID)
    assert other_key.derive_key(b"dedup") != expected


MEDIA_KEY = base64.b64encode(bytes(range(32))).decode().rstrip("=")


def encrypt_media(data: bytes, key: bytes = bytes(range(32)), pad: int | None = None) -> bytes:
    """WeCom's media encryption: AES-256-CBC, IV = key[:16], PKCS#7 to 32 bytes."""
    pad = pad if pad is not None else BLOCK_SIZE - len(data) % BLOCK_SIZE
    return AES.new(key, AES.MODE_CBC, key[:16]).encrypt(data + bytes((pad,)) * pad)


@pytest.mark.parametrize("size", [0, 1, 31, 32, 33, 100])
@pytest.mark.parametrize("key", [MEDIA_KEY, MEDIA_KEY + "="], ids=["unpadded-key", "padded-key"])
def test_decrypt_media_round_trips(size: int, key: str) -> None:
    data = bytes(range(256))[:size] * 1
    assert decrypt_media(encrypt_media(data), key) == data


@pytest.mark.parametrize(
    ("data", "key", "error", "message"),
    [
        pytest.param(
            encrypt_media(b"x"),
            "!" * 43,
            Base64DecodeError,
            "not valid base64",
            id="key-not-base64",
        ),
        pytest.param(
            encrypt_media(b"x"), "QUJD", DecryptError, "decodes to 3 bytes", id="key-3-bytes"
        ),
        pytest.param(b"", MEDIA_KEY, DecryptError, "length 0", id="empty"),
        pytest.param(
            encrypt_media(b"x")[:-1], MEDIA_KEY, DecryptError, "length 31", id="not-blocks"
        ),
        pytest.param(
            encrypt_media(b"x" * 31 + b"\x00", pad=0),
            MEDIA_KEY,
            IllegalBufferError,
            "padding",
            id="pad-0",
        ),
        pytest.param(
            encrypt_media(b"x" * 31 + b"\x21", pad=0),
            MEDIA_KEY,
            IllegalBufferError,
            "padding",
            id="pad-33",
        ),
        pytest.param(
            encrypt_media(b"x" * 29 + b"\x01\x02\x03", pad=0),
            MEDIA_KEY,
            IllegalBufferError,
            "padding",
            id="pad-mixed",
        ),
    ],
)
def test_decrypt_media_refuses(
    data: bytes, key: str, error: type[WeComError], message: str
) -> None:
    with pytest.raises(error, match=message):
        decrypt_media(data, key)


SIGNATURES = [
    pytest.param("", id="empty"),
    pytest.param("0" * 40, id="zeros"),
    pytest.param("X", id="short"),
    pytest.param("签名", id="non-ascii"),
    pytest.param("\ud800", id="lone-surrogate"),
]


@pytest.mark.parametrize("bad", SIGNATURES)
def test_bad_signature(bad: str) -> None:
    crypto = make_crypto()
    ciphertext = crypto.encrypt(b"hello")
    with pytest.raises(SignatureError) as caught:
        crypto.decrypt_message({"Encrypt": ciphertext}, bad, "1", "n")
    assert caught.value.code == -40001


def test_upper_case_signature_is_refused() -> None:
    """WeCom signs in lower-case hex; the official library compares exactly, and so do we."""
    crypto = make_crypto()
    ciphertext = crypto.encrypt(b"hello")
    good = signature(TOKEN, "1", "n", ciphertext)
    assert crypto.decrypt_message({"Encrypt": ciphertext}, good, "1", "n") == b"hello"
    with pytest.raises(SignatureError):
        crypto.decrypt_message({"Encrypt": ciphertext}, good.upper(), "1", "n")


def test_signature_checked_before_decryption() -> None:
    """A forged request with garbage ciphertext is a signature failure, not a decrypt failure."""
    with pytest.raises(SignatureError):
        make_crypto().decrypt_message({"encrypt": "garbage"}, "0" * 40, "1", "n")


ENVELOPES = [
    pytest.param(b"", ParseError, id="empty"),
    pytest.param(b"hello", ParseError, id="not-a-document"),
    pytest.param(b"<xml><Encrypt>", ParseError, id="truncated-xml"),
    pytest.param(b"<xml><ToUserName>x</ToUserName></xml>", ParseError, id="xml-without-encrypt"),
    pytest.param(b"<xml><Encrypt></Encrypt></xml>", ParseError, id="xml-empty-encrypt"),
    pytest.param(
        b'<!DOCTYPE x [<!ENTITY e "A">]><xml><Encrypt>&e;</Encrypt></xml>', ParseError, id="doctype"
    ),
    pytest.param(b'{"encrypt": 5}', ParseError, id="json-number"),
    pytest.param(b'{"tousername": "x"}', ParseError, id="json-without-encrypt"),
    pytest.param(b"[1, 2]", ParseError, id="json-array"),
    pytest.param(b'{"encrypt": "a"', ParseError, id="truncated-json"),
    pytest.param(b'{"encrypt": "\xff"}', ParseError, id="json-invalid-utf8"),
    pytest.param(b"<xml><Encrypt>\xff</Encrypt></xml>", ParseError, id="xml-invalid-utf8"),
    pytest.param(b"<" + b"a" * (2 * 1024 * 1024), PayloadTooLarge, id="over-size-cap"),
]


@pytest.mark.parametrize(("body", "error"), ENVELOPES)
def test_malformed_envelopes(body: bytes, error: type[WeComError]) -> None:
    with pytest.raises(error) as caught:
        make_crypto().decrypt_message(body, "0" * 40, "1", "n")
    assert caught.value.code == -40002


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b'{"encrypt": "CIPHER"}', id="json-lower"),
        pytest.param(b'{"Encrypt": "CIPHER", "ToUserName": "x"}', id="json-capitalised"),
        pytest.param(b"  <xml><Encrypt><![CDATA[CIPHER]]></Encrypt></xml>", id="xml-leading-space"),
        pytest.param(
            b"<xml><Encrypt>CIPHER</Encrypt><AgentID>1</AgentID></xml>", id="xml-no-cdata"
        ),
        pytest.param({"encrypt": "CIPHER"}, id="mapping"),
    ],
)
def test_envelope_forms(body: Any) -> None:
    assert extract_encrypted(body) == "CIPHER"


@pytest.mark.parametrize("format", ["xml", "json"])
def test_reply_envelope_reads_back_what_render_wrote(format: Any) -> None:
    body = render_envelope("CIPHER", "f" * 40, "1700000000", "n<]]>1", format)
    assert read_reply_envelope(body) == ReplyEnvelope("CIPHER", "f" * 40, "1700000000", "n<]]>1")
    assert read_reply_envelope(body.encode()) == read_reply_envelope(body)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"<xml><Encrypt>C</Encrypt></xml>", id="xml-callback"),
        pytest.param(b'{"encrypt": "C"}', id="json-callback"),
        pytest.param(b'{"encrypt": "C", "msgsignature": ""}', id="json-empty-signature"),
        pytest.param(b'{"encrypt": "C", "msgsignature": 5.5}', id="json-float-signature"),
        pytest.param(b'{"encrypt": "C", "msgsignature": true}', id="json-bool-signature"),
        pytest.param(b"<xml><MsgSignature>s</MsgSignature></xml>", id="xml-without-encrypt"),
        pytest.param(b'{"msgsignature": "s"}', id="json-without-encrypt"),
        pytest.param(b"[" * 100_000 + b"]" * 100_000, id="json-deeply-nested"),
        pytest.param(b'["msgsignature"]', id="json-array"),
        pytest.param(b"{\xff}", id="json-bad-utf8"),
        pytest.param(b"<xml><MsgSignature>s", id="truncated-xml"),
        pytest.param(b"plain text", id="plaintext"),
        pytest.param(b"", id="empty"),
    ],
)
def test_reply_envelope_refuses_what_is_not_one(body: bytes) -> None:
    with pytest.raises(ParseError):
        read_reply_envelope(body)


@pytest.mark.parametrize("format", ["XML", "Json", ""])
def test_unknown_envelope_format_is_refused(format: Any) -> None:
    with pytest.raises(ValueError, match="format must be"):
        render_envelope("CIPHER", "f" * 40, "1", "n", format)


def test_envelope_rendering_is_exact() -> None:
    """The XML form is the official template; the JSON form compact UTF-8 with a numeric stamp."""
    assert render_envelope("CIPHER", "f" * 40, "17", "n1") == (
        "<xml>\n<Encrypt><![CDATA[CIPHER]]></Encrypt>\n"
        f"<MsgSignature><![CDATA[{'f' * 40}]]></MsgSignature>\n"
        "<TimeStamp>17</TimeStamp>\n<Nonce><![CDATA[n1]]></Nonce>\n</xml>"
    )
    assert render_envelope("CIPHER", "f" * 40, "17", "随机", "json") == (
        '{"encrypt":"CIPHER","msgsignature":"' + "f" * 40 + '","timestamp":17,"nonce":"随机"}'
    )


def test_reply_envelope_json_after_white_space() -> None:
    body = b'\n  {"encrypt": "C", "msgsignature": "s", "timestamp": 1, "nonce": "n"}'
    assert read_reply_envelope(body) == ReplyEnvelope("C", "s", "1", "n")


def test_envelope_size_caps_and_their_boundaries() -> None:
    """The whole envelope is capped at MAX_XML_BYTES; a non-flat XML one at MAX_XML_FALLBACK."""
    flat = b"<xml><Encrypt><![CDATA[QUJD]]></Encrypt></xml>"
    assert extract_encrypted(flat + b" " * (MAX_XML_BYTES - len(flat))) == "QUJD"
    with pytest.raises(PayloadTooLarge):
        extract_encrypted(flat + b" " * (MAX_XML_BYTES - len(flat) + 1))
    long_cipher = "A" * 10_000  # flat: read by the pattern at any size
    assert (
        extract_encrypted(f"<xml><Encrypt><![CDATA[{long_cipher}]]></Encrypt></xml>") == long_cipher
    )
    not_flat = b'<xml><Encrypt>QUJD</Encrypt><Pad kind="attribute">'
    padding = MAX_XML_FALLBACK - len(not_flat) - len(b"</Pad></xml>")
    at_cap = not_flat + b"p" * padding + b"</Pad></xml>"
    assert len(at_cap) == MAX_XML_FALLBACK and extract_encrypted(at_cap) == "QUJD"
    with pytest.raises(ParseError, match="not the flat"):
        extract_encrypted(not_flat + b"p" * (padding + 1) + b"</Pad></xml>")


def test_reply_envelope_json_timestamp_is_text() -> None:
    body = b'{"encrypt": "C", "msgsignature": "s", "timestamp": 17, "nonce": true}'
    assert read_reply_envelope(body) == ReplyEnvelope("C", "s", "17", "")


FIELD_VALUES = st.text(alphabet=st.sampled_from("ab1 ]>&<\t\r\n\x01é"), max_size=6)


@settings(max_examples=300, deadline=None)
@given(
    before=st.lists(
        st.tuples(
            st.sampled_from(["ToUserName", "AgentID", "Encrypt", "a"]), FIELD_VALUES, st.booleans()
        ),
        max_size=3,
    ),
    after=st.lists(
        st.tuples(st.sampled_from(["AgentID", "Encrypt", "x1"]), FIELD_VALUES, st.booleans()),
        max_size=2,
    ),
    encrypted=st.text(alphabet=st.sampled_from("AZaz09+/=]"), min_size=1, max_size=8),
    space=st.sampled_from(["", "\n", " \t", "\f"]),
)
def test_envelope_fast_path_reads_what_lxml_reads(
    before: list[tuple[str, str, bool]],
    after: list[tuple[str, str, bool]],
    encrypted: str,
    space: str,
) -> None:
    """Whatever the flat-envelope shortcut accepts, the hardened parser reads the same way."""
    from flask_wecom.safe_xml import parse_xml

    def element(name: str, value: str, in_cdata: bool) -> str:
        return f"<{name}>{'<![CDATA[' + value + ']]>' if in_cdata else value}</{name}>{space}"

    body = (
        f"{space}<xml>{space}"
        + "".join(element(*field) for field in before)
        + f"<Encrypt><![CDATA[{encrypted}]]></Encrypt>{space}"
        + "".join(element(*field) for field in after)
        + f"</xml>{space}"
    ).encode()
    try:
        expected: str | None = parse_xml(body).findtext("Encrypt") or None
    except ParseError:
        expected = None
    try:
        got: str | None = extract_encrypted(body)
    except ParseError:
        got = None
    assert got == expected


def test_reused_cipher_objects_match_fresh_ciphers_across_threads() -> None:
    """Cipher objects are made once per key and chain on; each output equals a fresh CBC."""
    import threading

    crypto = WeComCrypto(TOKEN, KEY, CORP_ID)
    key = decode_aes_key(KEY)
    failures: list[str] = []

    def worker(seed: int) -> None:
        for i in range(300):
            message = f"{seed}-{i}-".encode() * (i % 7 + 1)
            ciphertext = crypto.encrypt(message)
            raw = base64.b64decode(ciphertext)
            fresh = AES.new(key, AES.MODE_CBC, key[:16]).decrypt(raw)
            if fresh[20 : 20 + len(message)] != message or crypto.decrypt(ciphertext)[0] != message:
                failures.append(f"{seed}-{i}")

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
