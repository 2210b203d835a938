"""The message model engine: nodes, registry, lenient conversion and :func:`parse_message`.

The models themselves are declared in :mod:`flask_wecom.messages` (which also re-exports this
module's public names); this module only knows how to build them.

:func:`parse_message` turns the decrypted plaintext into a :class:`Message`. The format is detected
from the first non-space character: ``<`` is XML (self-built apps (自建应用) and third-party suites
(第三方应用)), ``{`` is JSON (AI bots (智能机器人), or the rare JSON form of app callbacks).

Naming contract, the same for every model:

* ``.type`` is the lower-cased ``MsgType`` (AI bot: ``msgtype``; suite callbacks: ``InfoType``);
  ``.event`` is the lower-cased ``Event`` (AI bot: ``event.eventtype``), ``""`` when not an event;
  ``.change_type`` and ``.info_type`` are lower-cased too.
* Every element is an attribute under its mechanical snake_case name (:func:`snake_case`):
  ``FromUserName`` -> ``from_user_name``, ``AgentID`` -> ``agent_id``, ``Location_X`` ->
  ``location_x``; a Python keyword gets a trailing underscore (``from`` -> ``from_``).
  Documented fields are typed dataclass fields; anything else, including fields a newer WeCom adds,
  is still reachable through ``__getattr__`` (nested elements as :class:`Node`, repeats as tuples).
* Fields the docs define as integers are ``int``, decimal coordinates are ``float``; a missing
  or empty element is ``None``. ``MsgId`` (``msg_id``) is a ``str``: WeCom sends non-numeric ids
  such as ``CAIQg/PKxgYY2sC9tpuAgAMg9/zKaw==``, and numeric ones stay exact as text.
* **Conversion never refuses.** A value that does not fit its field's type keeps what was
  received: the typed attribute holds the text as ``str`` (``None`` when it is blank), or a
  :class:`Node` where text was expected and a nested element came. So an ``int`` field may hold
  a ``str`` when WeCom sends something undocumented; check with ``isinstance`` where it
  matters. :attr:`Node.raw` always has the document as received.
* **Repeated elements.** A field annotated ``tuple[...]`` takes every repetition (one element
  gives a 1-tuple); any other field takes the first repetition, and ``raw`` keeps them all as
  a list. ``MsgType``, ``Event``, ``ChangeType`` and ``InfoType`` likewise use the first.
* ``.raw`` keeps the whole document: XML element name -> text, nested dict, or list for repeated
  elements (attributes, comments and processing instructions are not part of WeCom's format and
  are dropped); JSON as loaded.

The model is looked up in one registry keyed on the channel (``app``, ``suite`` or ``aibot``) and
the path ``type/event/change_type``, most specific first. Anything well-formed but unknown becomes
:class:`UnknownEvent` or :class:`UnknownMessage`. The only documents refused (with
:class:`~flask_wecom.errors.ParseError`) are those that are not well-formed XML or JSON, and
those the hardened parser refuses (DOCTYPE or entity declarations, excessive size or depth).

This module imports nothing web-related; importing :mod:`flask_wecom` loads the models.
"""

from __future__ import annotations

import functools
import json
import keyword
import re
import types
from collections.abc import Callable, Iterator, Mapping
from dataclasses import MISSING, dataclass, field, fields
from typing import (
    TYPE_CHECKING,
    Any,
    Literal,
    NamedTuple,
    NoReturn,
    TypeVar,
    Union,
    get_args,
    get_origin,
    get_type_hints,
)

from .errors import ParseError, PayloadTooLarge
from .safe_xml import MAX_XML_BYTES, xml_to_dict

__all__ = [
    "DOC_BASE",
    "CallbackModel",
    "Channel",
    "Message",
    "Node",
    "UnknownMessage",
    "callback_table",
    "message_from_json",
    "parse_message",
    "register",
    "registered_paths",
    "snake_case",
    "xml_to_dict",
]

#: Where a callback came from: a self-built app, a third-party suite command callback (指令回调),
#: or an AI bot (智能机器人).
Channel = Literal["app", "suite", "aibot"]

_ACRONYM_WORD = re.compile(r"([A-Z]+)([A-Z][a-z])")
_WORD_BOUNDARY = re.compile(r"([a-z0-9])([A-Z])")
_INTEGER = re.compile(r"\s*[+-]?[0-9]{1,30}\s*")


@functools.lru_cache(maxsize=4096)  # the same few dozen names arrive in every callback
def snake_case(name: str) -> str:
    """Return the mechanical snake_case attribute name of a WeCom element or JSON key.

    ``FromUserName`` -> ``from_user_name``, ``AgentID`` -> ``agent_id``, ``Location_X`` ->
    ``location_x``, ``PicMd5Sum`` -> ``pic_md5_sum``; Python keywords get a trailing underscore.
    """
    snake = _WORD_BOUNDARY.sub(r"\1_\2", _ACRONYM_WORD.sub(r"\1_\2", name))
    snake = re.sub(r"_+", "_", snake).lower()
    return snake + "_" if keyword.iskeyword(snake) else snake


def _attribute_value(value: Any) -> Any:
    """Present a raw value as an attribute: dicts become :class:`Node`, lists tuples."""
    if isinstance(value, dict):
        return Node(raw=value)
    if isinstance(value, list):
        return tuple(_attribute_value(item) for item in value)
    return value


@dataclass(frozen=True, kw_only=True)
class Node:
    """A nested element (or JSON object); its children are attributes by snake_case name.

    Typed subclasses declare the documented children; any other child is reached as an attribute
    at run time (for type checkers: :meth:`get`) or in :attr:`raw`.
    """

    #: The element's children exactly as received (see the module docstring).
    raw: dict[str, Any] = field(default_factory=dict, repr=False, hash=False)

    def _attribute_sources(self) -> Iterator[Mapping[str, Any]]:
        yield self.raw

    if not TYPE_CHECKING:  # undeclared fields are reachable at run time, but not typo-proof

        def __getattr__(self, name: str) -> Any:
            if name.startswith("_") or name == "raw":
                raise AttributeError(name)
            for source in self._attribute_sources():
                for key, value in source.items():
                    if snake_case(key) == name:
                        return _attribute_value(value)
            raise AttributeError(f"{type(self).__name__} has no field {name!r}")

    def get(self, name: str) -> Any:
        """The field or child element named ``name`` (snake_case), None when absent.

        For fields a model does not declare (a newer WeCom may add some): type checkers do not
        see them as attributes, so that a typo in a declared one is caught.
        """
        try:
            return getattr(self, name)
        except AttributeError:
            return None


@dataclass(frozen=True, kw_only=True)
class Message(Node):
    """Base of every callback model.

    Usage::

        message = parse_message(plaintext)
        if message.type == "text":
            greeting = f"{message.from_user_name} says {message.content}"

    Typed fields follow the rules of this module: a value that does not fit its field's type
    is kept as received (text, or None when blank), a field that is not a tuple takes the first
    of a repeated element, and :attr:`raw` always holds the whole document.
    """

    #: Lower-cased MsgType, AI-bot ``msgtype`` or suite ``InfoType``.
    type: str
    #: Lower-cased Event (AI bot: ``event.eventtype``); ``""`` when not an event.
    event: str = ""
    #: True when the payload came as AI-bot (智能机器人) JSON.
    is_aibot: bool = False
    #: MsgId (AI bot: ``msgid``) as text, exactly as sent; None for events. Not an int: WeCom
    #: sends non-numeric ids too, so compare with ``str`` values.
    msg_id: str | None = None
    #: AgentID (the app's id), when present.
    agent_id: int | None = None
    #: ToUserName: the CorpID (or SuiteID) the callback was sent to.
    to_user_name: str | None = None
    #: FromUserName: the member's UserID (``sys`` for system events); AI bot: ``from.userid``.
    from_user_name: str | None = None
    #: CreateTime in seconds (AI bot: ``create_time``).
    create_time: int | None = None
    #: EventKey; for AI-bot template_card_event its ``event_key``.
    event_key: str | None = None
    #: Lower-cased ChangeType of change_contact, change_external_* and suite change_contact.
    change_type: str | None = None
    #: Lower-cased InfoType of third-party suite callbacks, else None.
    info_type: str | None = None
    #: Text content: ``Content``; AI bot: ``text.content`` or ``voice.content``.
    content: str | None = None

    @property
    def is_event(self) -> bool:
        """True for events (``MsgType=event`` or AI-bot ``msgtype=event``)."""
        return self.type == "event"

    @property
    def channel(self) -> Channel:
        """Which kind of callback this is: ``app``, ``suite`` or ``aibot``."""
        if self.is_aibot:
            return "aibot"
        return "suite" if self.info_type is not None else "app"

    def _attribute_sources(self) -> Iterator[Mapping[str, Any]]:
        yield self.raw
        details = self.raw.get("event") if self.is_aibot else None
        if isinstance(details, dict):
            # AI-bot events keep their details under "event"; expose them like XML event fields.
            yield details


M = TypeVar("M", bound=Message)

_REGISTRY: dict[tuple[Channel, str], type[Message]] = {}
_DOCS: dict[tuple[Channel, str], str] = {}

#: Where "Doc NNNNN" points: the official documentation (企业微信开发者中心).
DOC_BASE = "https://developer.work.weixin.qq.com/document/path/"


def register(channel: Channel, *paths: str, doc: str) -> Callable[[type[M]], type[M]]:
    """Register a model for ``type[/event[/change_type]]`` paths of one channel.

    :param doc: the official page that documents these callbacks: its number (``"90240"``,
        joined to :data:`DOC_BASE`) or a full URL.
    :raises RuntimeError: a path is registered twice.
    """
    url = doc if "://" in doc else DOC_BASE + doc

    def decorate(cls: type[M]) -> type[M]:
        for path in paths:
            if (channel, path) in _REGISTRY:
                raise RuntimeError(f"{channel}:{path} is registered twice")
            _REGISTRY[channel, path] = cls
            _DOCS[channel, path] = url
        return cls

    return decorate


def registered_paths() -> dict[tuple[Channel, str], type[Message]]:
    """Return a copy of the model registry: (channel, ``type/event/change_type``) -> model."""
    return dict(_REGISTRY)


class CallbackModel(NamedTuple):
    """One row of :func:`callback_table`."""

    #: ``app`` (self-built app), ``suite`` (third-party suite) or ``aibot`` (AI bot).
    channel: Channel
    #: ``type/event/change_type`` (suites: ``info_type/change_type``), lower-cased.
    path: str
    #: The model class a matching callback is parsed into.
    model: type[Message]
    #: The official page documenting the callback.
    doc: str


def callback_table() -> list[CallbackModel]:
    """Every registered callback: channel, path, model and doc link, sorted by channel and path."""
    return [
        CallbackModel(channel, path, model, _DOCS[channel, path])
        for (channel, path), model in sorted(_REGISTRY.items())
    ]


@functools.lru_cache(maxsize=1024)  # labels come off the network: bounded
def _model_for(channel: Channel, *parts: str) -> type[Message]:
    """Find the most specific model for the non-empty ``parts``, else :class:`UnknownMessage`."""
    path = [part for part in parts if part]
    while path:
        model = _REGISTRY.get((channel, "/".join(path)))
        if model is not None:
            return model
        path.pop()
    return UnknownMessage


@dataclass(frozen=True, kw_only=True)
class UnknownMessage(Message):
    """A well-formed callback of a type with no model; everything is in :attr:`raw`."""


# --------------------------------------------------------------------------- conversion

_COMMON_FIELDS = frozenset(f.name for f in fields(Message))
_NODE_FIELDS = frozenset(f.name for f in fields(Node))


class _Shape(NamedTuple):
    """What building one model class needs, worked out once per class."""

    #: (name, conversion of its annotation) of the fields it declares beyond its base's
    #: common fields.
    typed: tuple[tuple[str, Callable[[Any], Any]], ...]
    #: The default of every field that has one.
    defaults: dict[str, Any]
    #: How many fields it has in all.
    size: int


_SHAPES: dict[type[Node], _Shape] = {}


def _shape(cls: type[Node]) -> _Shape:
    """The :class:`_Shape` of a model class."""
    shape = _SHAPES.get(cls)
    if shape is None:
        hints = get_type_hints(cls)
        common = _COMMON_FIELDS if issubclass(cls, Message) else _NODE_FIELDS
        every = fields(cls)
        shape = _Shape(
            tuple((f.name, _converter(hints[f.name])) for f in every if f.name not in common),
            {f.name: f.default for f in every if f.default is not MISSING},
            len(every),
        )
        _SHAPES[cls] = shape
    return shape


def _kept(value: Any, convert: Callable[[Any], Any]) -> Any:
    """A value that does not fit ``convert``'s type, kept as received (see :class:`Message`).

    The first item of a repeated element is converted; blank text is None; other text stays
    text, a nested element a :class:`Node`.
    """
    if isinstance(value, list):
        first = value[0] if value else None
        return None if first is None else convert(first)
    if isinstance(value, str):
        return value if value.strip() else None
    return _attribute_value(value)


def _to_int(value: Any) -> Any:
    if isinstance(value, str):
        if value.isdigit() and value.isascii() and len(value) <= 30:
            return int(value)  # the usual form, without the pattern below
        if _INTEGER.fullmatch(value):
            return int(value)
    elif isinstance(value, int) and not isinstance(value, bool):
        return value
    return _kept(value, _to_int)


def _to_float(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return _kept(value, _to_float)


def _to_text(value: Any) -> Any:
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return _kept(value, _to_text)


def _convert(hint: Any, value: Any) -> Any:
    """Convert one raw value to the field annotation ``hint`` (see :class:`Message`)."""
    return None if value is None else _converter(hint)(value)


@functools.cache
def _converter(hint: Any) -> Callable[[Any], Any]:
    """The conversion for one field annotation, worked out once per annotation."""
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):
        (hint,) = (arg for arg in get_args(hint) if arg is not type(None))
        origin = get_origin(hint)
    if origin is tuple:
        convert_item = _converter(get_args(hint)[0])

        def repeated(value: Any) -> tuple[Any, ...]:
            items = value if isinstance(value, list) else [value]
            return tuple(None if item is None else convert_item(item) for item in items)

        return repeated
    scalar = {int: _to_int, float: _to_float, str: _to_text}.get(hint)
    if scalar is not None:
        return scalar

    def node(value: Any) -> Any:
        if isinstance(value, dict):
            return _build(hint, value, _by_snake_name(value))
        if isinstance(value, str) and not value.strip():
            return _build(hint, {}, {})  # an empty element
        return _kept(value, node)

    return node


N = TypeVar("N", bound=Node)


def _by_snake_name(mapping: Mapping[str, Any]) -> dict[str, Any]:
    """Index ``mapping`` by snake_case key; the first of two keys with one snake name wins."""
    return {snake_case(key): value for key, value in reversed(list(mapping.items()))}


def _build(cls: type[N], raw: dict[str, Any], by_name: Mapping[str, Any], **common: Any) -> N:
    """Build ``cls`` from ``raw``; typed fields are read from ``by_name`` (see _by_snake_name)."""
    typed, defaults, size = _shape(cls)
    values = {**defaults, **common, "raw": raw}
    for name, convert in typed:
        if name in by_name:
            value = by_name[name]
            values[name] = None if value is None else convert(value)
    if len(values) != size:
        return cls(**values)  # not every field given: let the dataclass say which is missing
    # Every field is known: fill the frozen instance at once instead of one setattr per field.
    node = object.__new__(cls)
    node.__dict__.update(values)
    return node


def _label(value: Any) -> str:
    """A type, event or change-type label: stripped and lower-cased; "" when absent.

    Of a repeated element the first value counts.
    """
    if isinstance(value, list) and value:
        value = value[0]
    return value.strip().lower() if isinstance(value, str) else ""


def _get(mapping: Any, *path: str) -> Any:
    """``mapping[path[0]][path[1]]...`` or None when any step is missing."""
    for key in path:
        if not isinstance(mapping, dict):
            return None
        mapping = mapping.get(key)
    return mapping


def _app_message(raw: dict[str, Any]) -> Message:
    """Build an XML-style (app or suite) model from its raw dict."""
    by_name = _by_snake_name(raw)
    info_type = _label(raw.get("InfoType")) if "InfoType" in raw else None
    channel: Channel = "suite" if info_type is not None and "MsgType" not in raw else "app"
    type_ = _label(raw.get("MsgType")) if channel == "app" else (info_type or "")
    event = _label(raw.get("Event"))
    change_type = _label(raw.get("ChangeType")) or None
    return _build(
        _model_for(channel, type_, event, change_type or ""),
        raw,
        by_name,
        type=type_,
        event=event,
        msg_id=_convert(str, by_name.get("msg_id")),
        agent_id=_convert(int, by_name.get("agent_id")),
        to_user_name=_convert(str, by_name.get("to_user_name")),
        from_user_name=_convert(str, by_name.get("from_user_name")),
        create_time=_convert(int, by_name.get("create_time")),
        event_key=_convert(str, by_name.get("event_key")),
        change_type=change_type,
        info_type=info_type if channel == "suite" else None,
        content=_convert(str, by_name.get("content")),
    )


def _bot_message(raw: dict[str, Any]) -> Message:
    """Build an AI-bot model from its JSON object."""
    type_ = _label(raw.get("msgtype"))
    details = raw.get("event") if type_ == "event" else None
    event = _label(_get(details, "eventtype"))
    # Event details sit under "event"; typed fields find them like top-level keys.
    lookup = {**raw, **details} if isinstance(details, dict) else raw
    return _build(
        _model_for("aibot", type_, event),
        raw,
        _by_snake_name(lookup),
        type=type_,
        event=event,
        is_aibot=True,
        msg_id=_convert(str, raw.get("msgid")),
        from_user_name=_convert(str, _get(raw, "from", "userid")),
        create_time=_convert(int, raw.get("create_time")),
        event_key=_convert(str, _get(details, event, "event_key")),
        content=_convert(str, _get(raw, type_, "content")),
    )


def _reject_constant(name: str) -> NoReturn:
    raise ParseError(f"JSON constant {name} is not allowed")


def parse_message(plaintext: bytes | str, *, max_bytes: int = MAX_XML_BYTES) -> Message:
    """Parse a decrypted callback into its model.

    :param plaintext: the decrypted XML or JSON document, as UTF-8 bytes or text.
    :param max_bytes: refuse longer documents with :class:`~flask_wecom.errors.PayloadTooLarge`.
    :raises ParseError: the document is not UTF-8, not XML or JSON, or malformed. Unknown but
        well-formed types never raise; they become :class:`UnknownMessage` / :class:`UnknownEvent`.
    """
    if len(plaintext) > max_bytes:  # cheap for str too: a character is at least one byte
        raise PayloadTooLarge(f"document of {len(plaintext)} units exceeds {max_bytes} bytes")
    try:
        if isinstance(plaintext, str):
            data, text = plaintext.encode("utf-8"), plaintext
        else:
            data, text = plaintext, plaintext.decode("utf-8")
    except UnicodeError as exc:
        raise ParseError("the document is not valid UTF-8") from exc
    if len(data) > max_bytes:
        raise PayloadTooLarge(f"document of {len(data)} bytes exceeds {max_bytes}")
    first = text.lstrip("\ufeff \t\r\n")[:1]
    if first == "<":
        return _app_message(xml_to_dict(data, max_bytes=max_bytes))
    if first != "{":
        raise ParseError("the document is neither XML nor a JSON object")
    try:
        document = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        raise ParseError("malformed JSON") from exc
    return message_from_json(document)


def message_from_json(document: dict[str, Any]) -> Message:
    """The model of a JSON callback already parsed (an AI bot's long-connection frame body).

    Like :func:`parse_message` after its JSON parsing: an object with ``msgtype`` is an AI
    bot's callback, any other an app's.
    """
    if "msgtype" in document:
        return _bot_message(document)
    return _app_message(document)
