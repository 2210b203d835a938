"""flask_wecom.safe_xml: each defence tested on its own, so removing any one of them fails a test.

The byte check refuses a DOCTYPE before libxml2 runs; the tree check catches one the byte check
cannot see (UTF-16); the parser flags hold even when both checks are bypassed; libxml2's depth
limit holds because ``huge_tree`` is off.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from flask_wecom import safe_xml
from flask_wecom.errors import ParseError, PayloadTooLarge
from flask_wecom.safe_xml import MAX_XML_BYTES, cdata, parse_xml, xml_to_dict

#: The byte check's refusal, before libxml2 runs.
REFUSED = "XML documents with a DOCTYPE or ENTITY declaration are refused"
#: The tree check's refusal, for a DOCTYPE the byte check could not see.
REFUSED_AFTER_PARSING = (
    "XML documents with a DOCTYPE are refused (this one in an encoding such as UTF-16)"
)
#: libxml2's nesting limit without XML_PARSE_HUGE (2048 with it).
LIBXML2_MAX_DEPTH = 256


def nested(depth: int) -> bytes:
    return b"<a>" * depth + b"</a>" * depth


# -- the DOCTYPE checks ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "document",
    [
        pytest.param("<!DOCTYPE xml><xml><a>1</a></xml>", id="plain-doctype"),
        pytest.param('<!DOCTYPE x [<!ENTITY e "boom">]><xml>&e;</xml>', id="internal-entity"),
        pytest.param(
            '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE xml SYSTEM "x.dtd"><xml/>',
            id="declared-system-dtd",
        ),
    ],
)
@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be"])
def test_utf16_doctype_is_refused_by_the_tree_check(document: str, encoding: str) -> None:
    """The byte check cannot see a UTF-16 DOCTYPE: the check on the parsed tree refuses it."""
    raw = ("\ufeff" if encoding != "utf-16" else "") + document
    data = raw.encode(encoding)
    assert b"<!DOCTYPE" not in data and b"<!ENTITY" not in data  # passes the byte check
    with pytest.raises(ParseError) as refused:
        parse_xml(data)
    assert str(refused.value) == REFUSED_AFTER_PARSING


@pytest.mark.parametrize(
    "document",
    [
        pytest.param(b"<!DOCTYPE xml><xml/>", id="doctype"),
        pytest.param(b"<xml><!ENTITY e 'x'></xml>", id="entity-without-doctype"),
        pytest.param(b"<!DOCTYPE x [<!ENTITY e 'x'>]><xml>&e;</xml>", id="both"),
    ],
)
def test_utf8_declarations_are_refused_before_parsing(document: bytes) -> None:
    with pytest.raises(ParseError) as refused:
        parse_xml(document)
    assert str(refused.value) == REFUSED  # not "malformed XML": libxml2 never ran


def test_a_utf16_document_without_doctype_parses() -> None:
    root = parse_xml("<xml><a>中文</a></xml>".encode("utf-16"))
    assert root.findtext("a") == "中文"


# -- the parser flags, with both checks bypassed --------------------------------------------------


@pytest.fixture
def dtd_file(tmp_path: Path) -> Path:
    dtd = tmp_path / "x.dtd"
    dtd.write_text('<!ATTLIST x a CDATA "from-the-dtd">\n<!ENTITY ext "from-the-dtd">\n')
    return dtd


class DtdServer:
    """A loopback HTTP server that serves a DTD and counts requests."""

    def __init__(self) -> None:
        self.hits = 0
        server_self = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server_self.hits += 1
                body = b'<!ATTLIST x a CDATA "from-the-network">'
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/x.dtd"
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()


@pytest.fixture
def dtd_server() -> Iterator[DtdServer]:
    served = DtdServer()
    yield served
    served.server.shutdown()
    served.server.server_close()


def bypassing_the_checks(document: bytes) -> etree._Element:
    """Parse with the module's parser directly, as if both DOCTYPE checks were gone."""
    return etree.fromstring(document, safe_xml._PARSER)


def test_internal_entities_are_not_resolved() -> None:
    root = bypassing_the_checks(b'<!DOCTYPE x [<!ENTITY e "EXPANDED">]><x>&e;</x>')
    assert "EXPANDED" not in etree.tostring(root, encoding="unicode").replace("&e;", "")
    assert root.text is None


def test_an_external_dtd_is_not_loaded(dtd_file: Path) -> None:
    root = bypassing_the_checks(f'<!DOCTYPE x SYSTEM "{dtd_file.as_uri()}"><x/>'.encode())
    assert root.get("a") is None  # load_dtd=True would apply the DTD's default attribute


def test_external_entities_are_not_read(dtd_file: Path) -> None:
    document = f'<!DOCTYPE x SYSTEM "{dtd_file.as_uri()}"><x>&ext;</x>'.encode()
    try:
        root = bypassing_the_checks(document)
    except etree.XMLSyntaxError:
        return  # undefined entity: refused, fine
    assert "from-the-dtd" not in etree.tostring(root, encoding="unicode")


def test_nothing_is_fetched_from_the_network(dtd_server: DtdServer) -> None:
    document = f'<!DOCTYPE x SYSTEM "{dtd_server.url}"><x/>'.encode()
    root = bypassing_the_checks(document)
    assert root.get("a") is None and dtd_server.hits == 0


def test_comments_and_processing_instructions_are_dropped() -> None:
    root = parse_xml(b"<x><!--note--><?pi data?><a>1</a></x>")
    assert [child.tag for child in root] == ["a"]


# -- libxml2's depth limit ------------------------------------------------------------------------


def test_depth_at_libxml2s_limit_parses() -> None:
    root = parse_xml(nested(LIBXML2_MAX_DEPTH))
    assert sum(1 for _ in root.iter()) == LIBXML2_MAX_DEPTH


@pytest.mark.parametrize("depth", [LIBXML2_MAX_DEPTH + 1, 2048, 100_000])
def test_depth_over_libxml2s_limit_is_refused(depth: int) -> None:
    """huge_tree=True would raise the limit to 2048 and let 257 and 2048 through."""
    with pytest.raises(ParseError, match="malformed XML"):
        parse_xml(nested(depth))


# -- size, encoding ----------------------------------------------------------------------------


def test_size_cap_is_one_mib_and_inclusive() -> None:
    assert MAX_XML_BYTES == 1024 * 1024
    filler = b"<x>" + b"a" * (MAX_XML_BYTES - len(b"<x></x>")) + b"</x>"
    assert len(parse_xml(filler).text or "") == MAX_XML_BYTES - 7
    with pytest.raises(PayloadTooLarge):
        parse_xml(filler + b" ")
    with pytest.raises(PayloadTooLarge):
        parse_xml(b"<x/>", max_bytes=3)
    assert parse_xml(b"<x/>", max_bytes=4).tag == "x"


@pytest.mark.parametrize(
    ("document", "message"),
    [
        pytest.param("<x>\ud800</x>", "not valid Unicode", id="lone-surrogate"),
        pytest.param(b"<x>\xff</x>", "malformed XML", id="bad-utf8"),
        pytest.param(b"", "malformed XML", id="empty"),
        pytest.param(b"<x>", "malformed XML", id="truncated"),
        pytest.param(
            '<?xml version="1.0" encoding="UTF-8"?><x/>', None, id="text-with-declaration"
        ),
    ],
)
def test_malformed_documents(document: bytes | str, message: str | None) -> None:
    if message is None:
        assert parse_xml(document).tag == "x"
        return
    with pytest.raises(ParseError) as refused:
        parse_xml(document)
    assert message in str(refused.value)


# -- xml_to_dict and cdata ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        pytest.param("<xml><A>1</A><B><![CDATA[x]]></B></xml>", {"A": "1", "B": "x"}, id="flat"),
        pytest.param("<xml><A>1</A><A>2</A></xml>", {"A": ["1", "2"]}, id="repeated"),
        pytest.param("<xml><A>1</A><A>2</A><A>3</A></xml>", {"A": ["1", "2", "3"]}, id="thrice"),
        pytest.param("<xml><A><B>1</B></A></xml>", {"A": {"B": "1"}}, id="nested"),
        pytest.param("<xml>text</xml>", {}, id="text-root"),
        pytest.param("<xml><A/></xml>", {"A": ""}, id="empty-element"),
    ],
)
def test_xml_to_dict(document: str, expected: dict[str, Any]) -> None:
    assert xml_to_dict(document) == expected
    assert xml_to_dict(document.encode()) == expected


@pytest.mark.parametrize(
    ("document", "flat"),
    [
        pytest.param(
            "<xml><A>1</A><B><![CDATA[<x>]]></B></xml>", {"A": "1", "B": "<x>"}, id="flat"
        ),
        pytest.param("<xml><A>1</A><A>2</A></xml>", None, id="repeated-name"),
        pytest.param("<xml><A><B>1</B></A></xml>", None, id="nested"),
        pytest.param("<xml><A>&amp;</A></xml>", None, id="entity"),
    ],
)
def test_flat_documents_are_read_without_lxml(document: str, flat: dict[str, str] | None) -> None:
    """The shortcut reads the flat subset itself and leaves everything else to lxml."""
    assert safe_xml._read_flat(document) == flat


def test_xml_to_dict_refuses_bad_utf8_through_the_parser() -> None:
    with pytest.raises(ParseError, match="malformed XML"):
        xml_to_dict(b"<xml><A>\xff</A></xml>")


def test_xml_to_dict_caps_the_flat_path_too() -> None:
    document = "<xml><A>" + "a" * 100 + "</A></xml>"
    with pytest.raises(PayloadTooLarge):
        xml_to_dict(document, max_bytes=50)


@pytest.mark.parametrize(
    "text",
    ["plain", "a]]>b", "]]>]]>", "line\r\nbreak", "\r", "中文 & <tags>", ""],
)
def test_cdata_round_trips(text: str) -> None:
    assert (parse_xml(f"<x>{cdata(text)}</x>").text or "") == text


@pytest.mark.parametrize("char", ["\x00", "\x08", "\x0b", "\ufffe", "\uffff", "\ud800"])
def test_cdata_refuses_what_xml_cannot_carry(char: str) -> None:
    with pytest.raises(ValueError, match=f"U\\+{ord(char):04X}"):
        cdata("a" + char)
