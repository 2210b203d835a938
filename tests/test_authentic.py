"""An authentic callback is never refused: every corpus document, mutated one leaf at a time.

Each mutant is signed and encrypted like WeCom would send it and goes through
:class:`~flask_wecom.middleware.WeComMiddleware`; it must reach the wrapped app parsed, with a
2xx answer. A value that does not fit its field is kept as sent (see :mod:`flask_wecom.model`).
The direction fields (``ToUserName``, ``FromUserName``, AI-bot ``from.userid``) stay intact: the
middleware checks them.
"""

from __future__ import annotations

import copy
import functools
import json
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable, Iterator
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from werkzeug.test import Client

from flask_wecom.crypto import WeComCrypto
from flask_wecom.messages import Message
from flask_wecom.middleware import WeComMiddleware
from flask_wecom.model import snake_case
from flask_wecom.testing import CallbackSigner
from tests.support.vectors import KEY, TOKEN

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

CORPUS = Path(__file__).parent / "corpus"
#: Sent only over the AI bot's long connection (长连接), never to a callback URL, and without a
#: sender: the HTTP direction check does not apply to it.
LONG_CONNECTION_ONLY = {"aibot/event_disconnected_event.json"}
DOCUMENTS = sorted(
    name
    for name in (str(p.relative_to(CORPUS)) for p in CORPUS.rglob("*") if p.is_file())
    if name not in LONG_CONNECTION_ONLY
)

#: A MsgId as WeCom sends it today (binarywang/WxJava#3714).
STRING_ID = "CAIQg/PKxgYY2sC9tpuAgAMg9/zKaw=="
#: Text with every character XML must escape, and a CDATA terminator.
JUNK = "x<&>]]>é junk"
#: Leaves the middleware's direction check reads: left as they are.
DIRECTION = {("ToUserName",), ("FromUserName",), ("from", "userid")}
#: Labels the model lower-cases and strips rather than keeping as text.
LABELS = {"type", "event", "change_type", "info_type"}

Path_ = tuple[str | int, ...]


# -- mutations: each returns the new leaf value, or None to skip the leaf -------------------------


def emptied(value: Any, name: str) -> Any:
    return ""


def junk(value: Any, name: str) -> Any:
    return JUNK


def padded(value: Any, name: str) -> Any:
    return f"  {value} \n\t"


def string_id(value: Any, name: str) -> Any:
    """Ids and times (and anything numeric) become a non-numeric id."""
    numeric = isinstance(value, int) or (isinstance(value, str) and value.strip().isdigit())
    idlike = name.lower().endswith(("id", "time", "timestamp", "code"))
    return STRING_ID if numeric or idlike else None


MUTATIONS: dict[str, Callable[[Any, str], Any]] = {
    "empty": emptied,
    "junk": junk,
    "padded": padded,
    "string-id": string_id,
}


# -- documents ---------------------------------------------------------------------------------


def xml_leaves(element: ElementTree.Element, at: Path_ = ()) -> Iterator[Path_]:
    """Index paths of the leaf elements under ``element``."""
    for index, child in enumerate(element):
        path = (*at, index)
        if len(child):
            yield from xml_leaves(child, path)
        else:
            yield path


def xml_names(root: ElementTree.Element, path: Path_) -> tuple[str, ...]:
    element, names = root, []
    for index in path:
        element = element[int(index)]
        names.append(element.tag)
    return tuple(names)


def xml_mutants(document: bytes, kind: str) -> Iterator[tuple[str, str, str | None]]:
    """(leaf name, mutant document, the leaf's new text) for every leaf the mutation applies to."""
    root = ElementTree.fromstring(document)  # noqa: S314 - the repository's own corpus
    for path in xml_leaves(root):
        names = xml_names(root, path)
        if names in DIRECTION:
            continue
        mutant = copy.deepcopy(root)
        parent = functools.reduce(lambda e, i: e[int(i)], path[:-1], mutant)
        leaf = parent[int(path[-1])]
        if kind == "repeated":
            twin = copy.deepcopy(leaf)
            twin.text = JUNK
            parent.insert(int(path[-1]) + 1, twin)
            new_text = None
        else:
            new_text = MUTATIONS[kind](leaf.text or "", leaf.tag)
            if new_text is None:
                continue
            leaf.text = new_text
        yield "/".join(names), ElementTree.tostring(mutant, encoding="unicode"), new_text


def json_leaves(value: Any, at: Path_ = ()) -> Iterator[Path_]:
    if isinstance(value, dict):
        for key, child in value.items():
            yield from json_leaves(child, (*at, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from json_leaves(child, (*at, index))
    else:
        yield at


def json_mutants(document: bytes, kind: str) -> Iterator[tuple[str, str, Any]]:
    """(leaf path, mutant document, the leaf's new value); "repeated" makes a value a list."""
    original = json.loads(document)
    for path in json_leaves(original):
        if tuple(str(step) for step in path) in DIRECTION:
            continue
        mutant = copy.deepcopy(original)
        parent = functools.reduce(lambda node, step: node[step], path[:-1], mutant)
        value = parent[path[-1]]
        new_value = [value, JUNK] if kind == "repeated" else MUTATIONS[kind](value, str(path[-1]))
        if new_value is None:
            continue
        parent[path[-1]] = new_value
        yield "/".join(map(str, path)), json.dumps(mutant, ensure_ascii=False), new_value


def receive_id(document: bytes, is_json: bool) -> str:
    """The id WeCom encrypts this document for: the CorpID, the SuiteID, or "" for AI bots."""
    if is_json:
        data = json.loads(document)
        return "" if "msgtype" in data else str(data.get("ToUserName", ""))
    root = ElementTree.fromstring(document)  # noqa: S314 - the repository's own corpus
    for name in ("ToUserName", "SuiteId", "ServiceCorpId"):
        found = root.findtext(name)
        if found:
            return found.strip()
    return ""


# -- the endpoint -------------------------------------------------------------------------------


class Recorder:
    """A plain WSGI app that keeps the parsed message and answers an empty 200."""

    def __init__(self) -> None:
        self.seen: list[Any] = []

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
        self.seen.append(environ.get("wecom.message"))
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "0")])
        return []


@functools.cache
def endpoint(rid: str, is_json: bool) -> tuple[Client, Recorder, CallbackSigner]:
    """A middleware for receive id ``rid`` with its recorder and a signer (one per id)."""
    recorder = Recorder()
    middleware = WeComMiddleware(recorder, WeComCrypto(TOKEN, KEY, rid), path="/wecom", dedup=False)
    signer = CallbackSigner(TOKEN, KEY, rid, format="json" if is_json else "xml")
    return Client(middleware), recorder, signer


def deliver(document: bytes, is_json: bool, rid: str) -> tuple[int, Any]:
    """Send ``document`` signed and encrypted; (status, the message the app saw or None)."""
    client, recorder, signer = endpoint(rid, is_json)
    request = signer.callback(document)
    recorder.seen.clear()
    response = client.open(
        request.url("/wecom"),
        method="POST",
        data=request.body,
        headers={"Content-Type": request.content_type},
    )
    return response.status_code, recorder.seen[0] if recorder.seen else None


def declared(message: Message, name: str) -> bool:
    """``name`` is a typed field of ``message`` kept as text when it does not fit."""
    return name not in LABELS and name in {f.name for f in fields(message)}


@pytest.mark.parametrize("kind", [*MUTATIONS, "repeated"])
@pytest.mark.parametrize("path", DOCUMENTS)
def test_every_mutant_reaches_the_app(path: str, kind: str) -> None:
    """Each one-leaf mutant of the document is answered 2xx and handed over parsed."""
    document = (CORPUS / path).read_bytes()
    is_json = path.endswith(".json")
    rid = receive_id(document, is_json)
    mutants = json_mutants(document, kind) if is_json else xml_mutants(document, kind)
    refused, count = [], 0
    for leaf, mutant, new_value in mutants:
        count += 1
        status, message = deliver(mutant.encode("utf-8"), is_json, rid)
        if not (200 <= status < 300 and isinstance(message, Message)):
            refused.append(f"{leaf}: {status}")
            continue
        name = snake_case(leaf)
        if kind in ("junk", "string-id") and "/" not in leaf and declared(message, name):
            value = getattr(message, name)
            if not isinstance(value, tuple):  # a repeated field holds a tuple of its items
                # A top-level typed field keeps text that does not fit its type, exactly.
                assert value == new_value, leaf
    assert refused == [], f"{len(refused)} of {count} mutants refused"
    assert count or kind == "string-id", "the document has no leaf to mutate"


def test_the_unmutated_corpus_is_delivered() -> None:
    """The baseline: every corpus document as it is reaches the app."""
    for path in DOCUMENTS:
        document = (CORPUS / path).read_bytes()
        is_json = path.endswith(".json")
        status, message = deliver(document, is_json, receive_id(document, is_json))
        assert status == 200 and isinstance(message, Message), path
