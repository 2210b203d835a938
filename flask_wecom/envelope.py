"""The outer callback envelopes: find the ciphertext in a request body, write a reply body.

Requests carry the ciphertext in ``<xml><Encrypt>…</Encrypt></xml>`` (self-built
apps, suites) or in JSON as ``{"encrypt": …}`` (AI bots; some JSON callbacks
capitalise it as ``Encrypt``). Replies are the official four-field envelope, in
XML or JSON. No cryptography happens here.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, Literal, NamedTuple

from .errors import ParseError, PayloadTooLarge
from .safe_xml import MAX_XML_BYTES, cdata, parse_xml

__all__ = [
    "EnvelopeFormat",
    "ReplyEnvelope",
    "extract_encrypted",
    "read_reply_envelope",
    "render_envelope",
]

#: The two envelope formats: ``"xml"`` for apps and suites, ``"json"`` for AI bots.
EnvelopeFormat = Literal["xml", "json"]

_ENCRYPT_KEYS = ("encrypt", "Encrypt")
#: The largest XML envelope read with lxml when it is not the flat ``<xml>`` WeCom sends
#: (which the pattern below reads at any size): parsing markup costs about 0.5 µs an element,
#: so an unauthenticated request must not be able to make it parse much.
MAX_XML_FALLBACK = 4096

# The envelope WeCom actually sends is a flat <xml> of simple elements. This pattern
# matches only a well-formed subset of XML (ASCII content with no markup, entities,
# controls or "]", and exactly one base64 <Encrypt>), so a match reads exactly what
# lxml would read; anything else goes through the hardened parser. It saves ~10 µs
# a callback, a third of the whole decryption.
_SPACE = rb"[ \t\r\n]*"
_CHARS = rb"[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\xff<&\]]*"
_FIELD = (
    rb"<(?!Encrypt>)([A-Za-z_][A-Za-z0-9_]{0,63})>(?:<!\[CDATA\["
    + _CHARS
    + rb"\]\]>|"
    + _CHARS
    + rb")</\%d>"
    + _SPACE
)
_FLAT_ENVELOPE = re.compile(
    _SPACE
    + rb"<xml>"
    + _SPACE
    + rb"(?:"
    + _FIELD % 1
    + rb")*<Encrypt><!\[CDATA\[([A-Za-z0-9+/=]+)\]\]></Encrypt>"
    + _SPACE
    + rb"(?:"
    + _FIELD % 3
    + rb")*</xml>"
    + _SPACE
)


def extract_encrypted(body: bytes | str | Mapping[str, Any]) -> str:
    """Return the ``Encrypt`` / ``encrypt`` value of a callback body.

    :param body: the raw POST body (XML or JSON, bytes or text) or an already
        parsed mapping.
    :raises ParseError: the body is not a well-formed envelope with a non-empty
        ciphertext string.
    """
    if isinstance(body, Mapping):
        return _from_mapping(body)
    raw = body.encode("utf-8") if isinstance(body, str) else body
    if len(raw) > MAX_XML_BYTES:
        raise PayloadTooLarge(f"envelope of {len(raw)} bytes exceeds {MAX_XML_BYTES}")
    flat = _FLAT_ENVELOPE.fullmatch(raw)
    if flat:
        return flat.group(2).decode("ascii")
    start = raw.lstrip()[:1]
    if start == b"<":
        if len(raw) > MAX_XML_FALLBACK:
            raise ParseError(
                f"an XML envelope of {len(raw)} bytes that is not the flat <xml> WeCom sends "
                f"(only up to {MAX_XML_FALLBACK} bytes are parsed otherwise)"
            )
        value = parse_xml(raw).findtext("Encrypt")
        if not value:
            raise ParseError("the XML envelope has no Encrypt element")
        return value
    if start == b"{":
        return _from_mapping(_json_object(raw))
    raise ParseError("the body is neither an XML nor a JSON envelope")


class ReplyEnvelope(NamedTuple):
    """The four fields of a passive-reply envelope, as text (a JSON timestamp too)."""

    encrypted: str
    signature: str
    timestamp: str
    nonce: str


def read_reply_envelope(body: bytes | str) -> ReplyEnvelope:
    """Read a passive-reply envelope (XML or AI-bot JSON) without checking anything.

    The one reader of reply envelopes, for the test kit and ``flask-wecom decrypt``: a
    reply carries its own signature (``MsgSignature`` / ``msgsignature``), which is how a
    reply is told from a callback. Checking the signature and decrypting are the caller's.

    :raises ParseError: the body is not a well-formed envelope with a ciphertext and a
        signature (a callback envelope, plaintext, bad UTF-8, JSON that is not an object
        or nests absurdly deep).
    """
    raw = body.encode("utf-8") if isinstance(body, str) else body
    if raw.lstrip()[:1] == b"{":
        document = _json_object(raw)
        fields = [document.get(k) for k in ("msgsignature", "timestamp", "nonce")]
    else:
        root = parse_xml(raw)
        fields = [root.findtext(k) for k in ("MsgSignature", "TimeStamp", "Nonce")]
    signature, timestamp, nonce = (
        str(v) if isinstance(v, str | int) and not isinstance(v, bool) else "" for v in fields
    )
    if not signature:
        raise ParseError("no MsgSignature: not a reply envelope")
    return ReplyEnvelope(extract_encrypted(raw), signature, timestamp, nonce)


def _json_object(raw: bytes) -> dict[str, Any]:
    """A JSON envelope as a dict; anything else is a ParseError."""
    try:
        document = json.loads(raw)
    except (ValueError, RecursionError) as exc:  # bad JSON, bad UTF-8, absurd nesting
        raise ParseError(f"malformed JSON envelope: {exc}") from exc
    if not isinstance(document, dict):
        raise ParseError("the JSON envelope is not an object")
    return document


def _from_mapping(document: Mapping[str, Any]) -> str:
    for key in _ENCRYPT_KEYS:
        value = document.get(key)
        if isinstance(value, str) and value:
            return value
    raise ParseError("the JSON envelope has no non-empty 'encrypt' string")


def render_envelope(
    encrypted: str,
    signature: str,
    timestamp: str,
    nonce: str,
    format: EnvelopeFormat = "xml",
) -> str:
    """Write the passive-reply envelope around an encrypted reply.

    ``encrypted`` (base64) and ``signature`` (hex) cannot hold markup; the nonce
    is escaped. XML follows the official template byte for byte; JSON is the AI-bot form
    ``{"encrypt", "msgsignature", "timestamp", "nonce"}`` with a numeric
    timestamp, as doc 101033 shows.

    :raises ValueError: ``format`` is neither ``"xml"`` nor ``"json"``.
    """
    if format == "json":
        return json.dumps(
            {
                "encrypt": encrypted,
                "msgsignature": signature,
                "timestamp": int(timestamp),
                "nonce": nonce,
            },
            separators=(",", ":"),
            ensure_ascii=False,
        )
    if format != "xml":
        raise ValueError(f"format must be 'xml' or 'json', got {format!r}")
    return (
        "<xml>\n"
        f"<Encrypt><![CDATA[{encrypted}]]></Encrypt>\n"
        f"<MsgSignature><![CDATA[{signature}]]></MsgSignature>\n"
        f"<TimeStamp>{timestamp}</TimeStamp>\n"
        f"<Nonce>{cdata(nonce)}</Nonce>\n"
        "</xml>"
    )
