"""The one hardened XML parser used for every document that comes off the network.

lxml with DTD loading, DTD validation, entity resolution and network access off,
and ``huge_tree`` off so libxml2 keeps its depth and size limits. A document
with a DOCTYPE is refused outright, which stops billion-laughs, quadratic
blow-up and external-entity attacks before libxml2 sees them. Documents are
capped in length before parsing.

:func:`xml_to_dict` reads a document into plain dicts. What WeCom actually sends
(nearly every callback) is a flat ``<xml>`` of simple elements; such a document
is read by a strict regular expression that accepts only a subset of XML whose
reading is certain, at about half of lxml's cost. Anything else goes to the
hardened parser.
"""

from __future__ import annotations

import re
from typing import Any

from lxml import etree

from .errors import ParseError, PayloadTooLarge

__all__ = ["MAX_XML_BYTES", "cdata", "parse_xml", "xml_to_dict"]

#: Longest document :func:`parse_xml` accepts, in bytes. WeCom callbacks are a few KB.
MAX_XML_BYTES = 1024 * 1024

#: Characters outside XML 1.0's Char production.
_XML_ILLEGAL = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")

_PARSER = etree.XMLParser(
    load_dtd=False,
    dtd_validation=False,
    resolve_entities=False,
    no_network=True,
    huge_tree=False,
    remove_comments=True,
    remove_pis=True,
)


def parse_xml(data: bytes | str, *, max_bytes: int = MAX_XML_BYTES) -> etree._Element:
    """Parse ``data`` into an element tree, or raise :class:`ParseError`.

    :param data: the document, as UTF-8 bytes or text.
    :param max_bytes: refuse longer documents with :class:`PayloadTooLarge`.
    """
    try:
        raw = data.encode("utf-8") if isinstance(data, str) else data
    except UnicodeEncodeError as exc:  # a lone surrogate: no XML document holds one
        raise ParseError("the document is not valid Unicode") from exc
    if len(raw) > max_bytes:
        raise PayloadTooLarge(f"XML document of {len(raw)} bytes exceeds {max_bytes}")
    if b"<!DOCTYPE" in raw or b"<!ENTITY" in raw:
        raise ParseError("XML documents with a DOCTYPE or ENTITY declaration are refused")
    try:
        root = etree.fromstring(raw, _PARSER)
    except (etree.XMLSyntaxError, ValueError) as exc:
        raise ParseError(f"malformed XML: {exc}") from exc
    docinfo: Any = root.getroottree().docinfo  # lxml-stubs lacks DocInfo.doctype
    if docinfo.doctype:
        # Reached only when the declaration was hidden from the byte check (e.g. UTF-16).
        raise ParseError(
            "XML documents with a DOCTYPE are refused (this one in an encoding such as UTF-16)"
        )
    return root


# The flat subset: <xml>, then simple elements with an ASCII name and either one CDATA section
# or plain text, separated by spaces, tabs and line feeds. Text may hold any character XML 1.0
# allows except "\r" (which a parser rewrites to "\n"), and plain text no markup, entity or "]".
# For a document in the subset, a conforming parser reads exactly the captured text.
_SPACE = r"[ \t\n]*"
_ILLEGAL = r"\x00-\x08\x0b-\x1f\ud800-\udfff\ufffe\uffff"  # "\r" included; "\t", "\n" not
_FLAT_FIELD = (
    r"<(?P<name>[A-Za-z_][A-Za-z0-9_]{0,63})>"
    rf"(?:<!\[CDATA\[([^{_ILLEGAL}\]]*(?:\](?!\]>)[^{_ILLEGAL}\]]*)*)\]\]>|([^{_ILLEGAL}<&\]]*))"
    r"</(?P=name)>" + _SPACE
)
_FLAT_OPEN = re.compile(f"{_SPACE}<xml>{_SPACE}")
_FLAT_FIELD_AT = re.compile(_FLAT_FIELD).match
_FLAT_CLOSE = re.compile(f"</xml>{_SPACE}")


def _read_flat(text: str) -> dict[str, str] | None:
    """The children of a document in the flat subset without repeated names, else None.

    One pass, field after field: each field's pattern has a single way to match, so reading
    them greedily accepts exactly the documents the whole pattern would.
    """
    opening = _FLAT_OPEN.match(text)
    if opening is None:
        return None
    position = opening.end()
    children: dict[str, str] = {}
    while (element := _FLAT_FIELD_AT(text, position)) is not None:
        name, in_cdata, plain = element.groups("")
        if name in children:
            return None  # repeats become lists: left to the general reader
        children[name] = in_cdata or plain
        position = element.end()
    closing = _FLAT_CLOSE.match(text, position)
    if closing is None or closing.end() != len(text):
        return None
    return children


def _element_value(element: etree._Element) -> Any:
    if len(element) == 0:
        return element.text or ""
    children: dict[str, Any] = {}
    for child in element:
        name = str(child.tag)
        value = _element_value(child)
        if name not in children:
            children[name] = value
        elif isinstance(children[name], list):
            children[name].append(value)
        else:
            children[name] = [children[name], value]
    return children


def xml_to_dict(data: bytes | str, *, max_bytes: int = MAX_XML_BYTES) -> dict[str, Any]:
    """Read an XML document into a dict, with the hardened parser where it matters.

    The root element is dropped; each child maps its name to its text, a nested dict, or a list
    when the name repeats. Attributes, comments and processing instructions are dropped.

    :raises ParseError: the document is malformed, too long or declares a DOCTYPE.
    """
    if len(data) <= max_bytes:  # a character is at least one byte: longer ones fail below
        try:
            text = data.decode("utf-8") if isinstance(data, bytes) else data
        except UnicodeDecodeError:
            text = ""  # the parser says what is wrong
        flat = _read_flat(text)
        if flat is not None:
            return flat
    value = _element_value(parse_xml(data, max_bytes=max_bytes))
    return value if isinstance(value, dict) else {}


def cdata(text: str) -> str:
    """Write ``text`` as XML character data that parses back to exactly ``text``.

    The text goes in CDATA sections. A ``]]>`` inside would end a section early
    (the bug wechatpy and WxJava have), so the section is split between ``]]``
    and ``>``; a carriage return, which XML parsers turn into a line feed even in
    CDATA, is written as ``&#13;`` between sections.

    :raises ValueError: ``text`` holds a character XML 1.0 cannot carry at all
        (most C0 controls, U+FFFE, U+FFFF, lone surrogates).
    """
    bad = _XML_ILLEGAL.search(text)
    if bad:
        raise ValueError(f"U+{ord(bad.group()):04X} cannot be written in XML 1.0")
    body = text.replace("]]>", "]]]]><![CDATA[>").replace("\r", "]]>&#13;<![CDATA[")
    return "<![CDATA[" + body + "]]>"
