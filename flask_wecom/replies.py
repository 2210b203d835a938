"""Passive replies (被动回复): what a handler returns to answer a callback.

App replies render to the XML plaintext of doc 90241; AI-bot (智能机器人) replies render to the
compact JSON of doc 101031. Encrypting and signing the plaintext is the envelope's job.

Usage::

    reply = TextReply("hello")
    plaintext = reply.render(message)          # XML addressed back to the sender

Rules, checked when a reply is constructed (:class:`~flask_wecom.errors.ReplyError`):

* XML text is written in CDATA (:func:`flask_wecom.safe_xml.cdata`), so ``]]>``, ``<``, ``&``,
  carriage returns and non-BMP characters come back unchanged. Characters XML 1.0 cannot carry at
  all (C0 controls other than tab, line feed and carriage return; U+FFFE, U+FFFF; lone
  surrogates) are refused, never silently stripped. JSON replies refuse lone surrogates only.
* A passive text reply holds at most :data:`MAX_TEXT_BYTES` UTF-8 bytes. Longer content is
  refused rather than truncated (WeCom would cut it silently, possibly mid-character); send long
  text with ``message/send`` instead.
* A news reply holds 1 to :data:`MAX_NEWS_ARTICLES` articles.
* Stream content keeps its last :data:`MAX_STREAM_BYTES` bytes, cut on a UTF-8 boundary
  (:func:`truncate_utf8_tail`); stream images are allowed only with ``finish=True``.
* Cards are given in the snake_case JSON schema of doc 101032 for every reply (the same dicts
  ``message/send`` takes). For the XML ``update_template_card`` reply the keys are written as the
  CamelCase elements of doc 90241 and leaves as text (``True`` -> ``"true"``, ``1`` -> ``"1"``);
  the reply stores the card in that text form, so ``parse_reply(r.render(m)) == r`` holds.

Whether a reply may answer a message at all is decided by one table, :data:`ALLOWED_REPLIES`;
:meth:`Reply.render` raises :class:`~flask_wecom.errors.ReplyError` for any other pairing (e.g. a
text reply to an AI-bot ``feedback_event``).

This module imports nothing web-related.
"""

from __future__ import annotations

import abc
import base64 as base64_codec
import hashlib
import json
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Any, ClassVar, Literal, TypeAlias

from .errors import ParseError, ReplyError
from .messages import BotTemplateCardEvent, Channel, Message, snake_case, xml_to_dict
from .safe_xml import cdata

__all__ = [
    "ALLOWED_REPLIES",
    "MAX_FEEDBACK_ID_BYTES",
    "MAX_NEWS_ARTICLES",
    "MAX_STREAM_BYTES",
    "MAX_STREAM_IMAGES",
    "MAX_STREAM_IMAGE_BYTES",
    "MAX_TEXT_BYTES",
    "Article",
    "BotUpdateTemplateCardReply",
    "ImageReply",
    "JsonReply",
    "NewsReply",
    "Reply",
    "StreamImage",
    "StreamReply",
    "StreamWithTemplateCardReply",
    "TemplateCardReply",
    "TextReply",
    "UpdateButtonReply",
    "UpdateTaskcardReply",
    "UpdateTemplateCardReply",
    "VideoReply",
    "VoiceReply",
    "WelcomeTextReply",
    "XmlReply",
    "allowed_replies",
    "parse_reply",
    "truncate_utf8_tail",
    "xml_elements",
]

#: Longest passive text reply ``Content``, in UTF-8 bytes (doc 90241).
MAX_TEXT_BYTES = 2048
#: Most articles in a news reply. Doc 90241 says "限制为8条以内"; wechatpy allows 10.
MAX_NEWS_ARTICLES = 8
#: Longest AI-bot stream ``content``, in UTF-8 bytes; longer content keeps its tail.
MAX_STREAM_BYTES = 20480
#: Most images (``msg_item``) in a finished stream reply.
MAX_STREAM_IMAGES = 10
#: Largest stream image before base64, in bytes.
MAX_STREAM_IMAGE_BYTES = 10 * 1024 * 1024
#: Longest stream ``feedback.id``, in UTF-8 bytes.
MAX_FEEDBACK_ID_BYTES = 256

#: A value :func:`xml_elements` can write: text (CDATA), a bare integer, nested elements, or a
#: sequence written as repeated elements of one name.
XmlValue: TypeAlias = "str | int | Mapping[str, XmlValue] | Sequence[XmlValue]"


def truncate_utf8_tail(text: str, max_bytes: int) -> str:
    """Return the longest tail of ``text`` that fits in ``max_bytes`` UTF-8 bytes.

    The cut falls on a character boundary, so the result may be up to 3 bytes shorter than
    ``max_bytes``. Used for AI-bot stream content, which WeCom caps at 20480 bytes.

    :raises UnicodeEncodeError: ``text`` holds a lone surrogate.
    """
    if max_bytes < 0:
        raise ValueError("max_bytes must not be negative")
    data = text.encode("utf-8")
    if len(data) <= max_bytes:
        return text
    start = len(data) - max_bytes
    while start < len(data) and data[start] & 0xC0 == 0x80:  # skip UTF-8 continuation bytes
        start += 1
    return data[start:].decode("utf-8")


def xml_elements(elements: Mapping[str, XmlValue]) -> str:
    """Write ``elements`` as XML: text in CDATA, integers bare, mappings nested, sequences repeated.

    :raises ValueError: a text holds a character XML 1.0 cannot carry.
    """
    parts = []
    for name, value in elements.items():
        # The common types first: they skip the slower ABC checks.
        if isinstance(value, (list, tuple)):
            items: Sequence[XmlValue] = value
        elif isinstance(value, (str, int, dict)) or not isinstance(value, Sequence):
            items = (value,)
        else:
            items = value
        for item in items:
            if isinstance(item, str):
                inner = cdata(item)
            elif isinstance(item, int):
                inner = str(item)
            elif isinstance(item, (dict, Mapping)):
                inner = xml_elements(item)
            else:
                raise TypeError(f"element {name!r} cannot hold {type(item).__name__}")
            parts.append(f"<{name}>{inner}</{name}>")
    return "".join(parts)


def _camel(name: str) -> str:
    """``media_id`` -> ``MediaId``: the element name of a reply field."""
    return "".join(part.capitalize() for part in name.split("_"))


def _require_xml_text(value: str, name: str) -> None:
    try:
        cdata(value)
    except ValueError as exc:
        raise ReplyError(f"{name}: {exc}") from exc


def _require_utf8(value: str, name: str) -> None:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ReplyError(f"{name} holds a lone surrogate, which UTF-8 cannot carry") from exc


def _utf8_length(value: str) -> int:
    return len(value.encode("utf-8"))


_ELEMENT_NAMES: dict[type, tuple[tuple[str, str], ...]] = {}


def _element_names(cls: type) -> tuple[tuple[str, str], ...]:
    """``(field name, element name)`` of each field of the dataclass ``cls``, worked out once."""
    names = _ELEMENT_NAMES.get(cls)
    if names is None:
        names = _ELEMENT_NAMES[cls] = tuple((f.name, _camel(f.name)) for f in fields(cls))
    return names


def _check_xml_fields(obj: object) -> None:
    """Refuse any text field of the dataclass ``obj`` that XML 1.0 cannot carry."""
    for name, _ in _element_names(type(obj)):
        value = getattr(obj, name)
        if isinstance(value, str):
            _require_xml_text(value, name)


def _camel_fields(obj: object) -> dict[str, XmlValue]:
    """The fields of the dataclass ``obj`` keyed by element name."""
    return {element: getattr(obj, name) for name, element in _element_names(type(obj))}


def _fields_from_xml(cls: Any, element: Any) -> dict[str, Any]:
    """Keyword arguments for the dataclass ``cls`` from an element dict keyed by element name."""
    if not isinstance(element, dict):
        raise ParseError(f"{cls.__name__}: expected nested elements")
    return {f.name: element[_camel(f.name)] for f in fields(cls) if _camel(f.name) in element}


# --------------------------------------------------------------------------- card conversion

#: Card keys (doc 101032) that hold lists; in XML they repeat, and a single one is still a list.
_CARD_LIST_KEYS = frozenset(
    {
        "action_list",
        "button_list",
        "horizontal_content_list",
        "jump_list",
        "option_list",
        "select_list",
        "vertical_content_list",
    }
)
#: Card keys whose XML element name is not the mechanical CamelCase (doc 90241).
_CARD_XML_NAMES = {
    "appid": "AppId",
    "checkbox": "CheckBox",
    "keyname": "KeyName",
    "pagepath": "PagePath",
    "userid": "UserId",
}
_CARD_KEYS = {xml_name: key for key, xml_name in _CARD_XML_NAMES.items()}
_CARD_KEY = re.compile(r"[a-z][a-z0-9]*(?:_[a-z][a-z0-9]*)*")


def _card_xml_name(key: str) -> str:
    return _CARD_XML_NAMES.get(key) or _camel(key)


def _card_key(xml_name: str) -> str:
    return _CARD_KEYS.get(xml_name) or snake_case(xml_name)


def _xml_card_value(value: Any, key: str) -> Any:
    """``value`` in the form an XML card round-trips to: text leaves, lists only when repeated."""
    if isinstance(value, Mapping):
        card: dict[str, Any] = {}
        for child_key, child in value.items():
            if not (
                isinstance(child_key, str)
                and _CARD_KEY.fullmatch(child_key)
                and _card_key(_card_xml_name(child_key)) == child_key
            ):
                raise ReplyError(f"card key {child_key!r} has no XML element name")
            converted = _xml_card_value(child, child_key)
            if child_key in _CARD_LIST_KEYS and not isinstance(converted, list):
                converted = [converted]  # a list key holds a list even when it appears once
            if converted != []:  # an empty list writes no element at all
                card[child_key] = converted
        return card or ""  # an element without children reads back as empty text
    if isinstance(value, (list, tuple)):
        items = [_xml_card_value(item, key) for item in value]
        if any(isinstance(item, list) for item in items):
            raise ReplyError(f"card key {key!r}: XML cannot hold a list of lists")
        return items[0] if len(items) == 1 else items  # one element reads back as one value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, str)):
        text = str(value)
        _require_xml_text(text, f"card key {key!r}")
        return text
    raise ReplyError(f"card key {key!r}: {type(value).__name__} cannot be written as XML")


def _rename_keys(value: Any, rename: Callable[[str], str]) -> Any:
    """``value`` with every mapping key passed through ``rename``, recursively."""
    if isinstance(value, dict):
        return {rename(key): _rename_keys(child, rename) for key, child in value.items()}
    if isinstance(value, list):
        return [_rename_keys(item, rename) for item in value]
    return value


def _json_card(card: Any) -> dict[str, Any]:
    """A deep copy of ``card`` in plain JSON types (dicts and lists)."""

    def plain(value: Any) -> Any:
        if isinstance(value, Mapping):
            return {str(key): plain(child) for key, child in value.items()}
        if isinstance(value, (list, tuple)):
            return [plain(item) for item in value]
        return value

    if not isinstance(card, Mapping):
        raise ReplyError("a template card must be a mapping")
    copy: dict[str, Any] = plain(card)
    return copy


_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _dump_json(payload: Mapping[str, Any]) -> str:
    """Compact JSON with non-ASCII kept, or :class:`ReplyError`."""
    try:
        text = _JSON.encode(payload)
    except (TypeError, ValueError) as exc:
        raise ReplyError(f"the reply cannot be written as JSON: {exc}") from exc
    _require_utf8(text, "the reply")
    return text


# --------------------------------------------------------------------------- reply classes


@dataclass(frozen=True)
class Reply(abc.ABC):
    """Base of every passive reply.

    :meth:`render` checks the reply against :data:`ALLOWED_REPLIES` and writes the plaintext::

        TextReply("hi").render(message, clock=lambda: 1700000000.0)
    """

    #: ``"xml"`` for app replies, ``"json"`` for AI-bot replies.
    format: ClassVar[Literal["xml", "json"]]

    def render(self, message: Message, *, clock: Callable[[], float] | None = None) -> str:
        """Write the reply plaintext answering ``message``.

        :param message: the callback being answered.
        :param clock: seconds since the epoch for ``CreateTime``; defaults to :func:`time.time`.
        :raises ReplyError: this kind of reply may not answer ``message``.
        """
        allowed = allowed_replies(message)
        if not isinstance(self, allowed):
            accepted = ", ".join(cls.__name__ for cls in allowed) or "only an empty reply"
            raise ReplyError(
                f"{type(self).__name__} cannot answer {message.channel} "
                f"{message.type}/{message.event or '-'}; it accepts {accepted}"
            )
        return self._render(message, clock or time.time)

    @abc.abstractmethod
    def _render(self, message: Message, clock: Callable[[], float]) -> str:
        """Write the plaintext once the reply is known to be allowed."""


@dataclass(frozen=True)
class XmlReply(Reply):
    """Base of the app (自建应用) XML replies of doc 90241."""

    format: ClassVar[Literal["xml", "json"]] = "xml"
    #: The reply's ``MsgType``.
    msg_type: ClassVar[str]
    #: The element wrapping the fields (``<Image>``), or None when they sit at the top level.
    wrapper: ClassVar[str | None] = None

    def __post_init__(self) -> None:
        _check_xml_fields(self)

    def _body(self) -> dict[str, XmlValue]:
        """The elements after ``MsgType``."""
        body = _camel_fields(self)
        return {self.wrapper: body} if self.wrapper else body

    @classmethod
    def _from_body(cls, body: dict[str, Any]) -> XmlReply:
        """Rebuild the reply from the elements of its rendered document."""
        return cls(**_fields_from_xml(cls, body.get(cls.wrapper) if cls.wrapper else body))

    def _render(self, message: Message, clock: Callable[[], float]) -> str:
        if message.from_user_name is None or message.to_user_name is None:
            raise ReplyError("the message has no FromUserName/ToUserName to answer")
        header: dict[str, XmlValue] = {
            "ToUserName": message.from_user_name,
            "FromUserName": message.to_user_name,
            "CreateTime": int(clock()),
            "MsgType": self.msg_type,
        }
        return xml_elements({"xml": {**header, **self._body()}})


@dataclass(frozen=True)
class TextReply(XmlReply):
    """Text reply; ``content`` of at most :data:`MAX_TEXT_BYTES` UTF-8 bytes."""

    msg_type: ClassVar[str] = "text"
    content: str

    def __post_init__(self) -> None:
        super().__post_init__()
        size = _utf8_length(self.content)
        if size > MAX_TEXT_BYTES:
            raise ReplyError(
                f"text reply content is {size} bytes; WeCom accepts at most {MAX_TEXT_BYTES} "
                "(send longer text with message/send)"
            )


@dataclass(frozen=True)
class _MediaReply(XmlReply):
    """A reply carrying an uploaded media id (素材)."""

    media_id: str


@dataclass(frozen=True)
class ImageReply(_MediaReply):
    """Image reply: ``<Image><MediaId/></Image>``."""

    msg_type: ClassVar[str] = "image"
    wrapper: ClassVar[str | None] = "Image"


@dataclass(frozen=True)
class VoiceReply(_MediaReply):
    """Voice reply: ``<Voice><MediaId/></Voice>``."""

    msg_type: ClassVar[str] = "voice"
    wrapper: ClassVar[str | None] = "Voice"


@dataclass(frozen=True)
class VideoReply(_MediaReply):
    """Video reply with an optional title and description."""

    msg_type: ClassVar[str] = "video"
    wrapper: ClassVar[str | None] = "Video"
    title: str = ""
    description: str = ""


@dataclass(frozen=True)
class Article:
    """One article (图文) of a :class:`NewsReply`."""

    title: str
    description: str = ""
    pic_url: str = ""
    url: str = ""

    def __post_init__(self) -> None:
        _check_xml_fields(self)


@dataclass(frozen=True)
class NewsReply(XmlReply):
    """News reply (图文消息) with 1 to :data:`MAX_NEWS_ARTICLES` articles."""

    msg_type: ClassVar[str] = "news"
    articles: Sequence[Article]

    def __post_init__(self) -> None:
        object.__setattr__(self, "articles", tuple(self.articles))
        if not all(isinstance(article, Article) for article in self.articles):
            raise ReplyError("news articles must be Article objects")
        if not 1 <= len(self.articles) <= MAX_NEWS_ARTICLES:
            raise ReplyError(
                f"a news reply holds 1 to {MAX_NEWS_ARTICLES} articles, not {len(self.articles)}"
            )

    def _body(self) -> dict[str, XmlValue]:
        items = [_camel_fields(article) for article in self.articles]
        return {"ArticleCount": len(items), "Articles": {"item": items}}

    @classmethod
    def _from_body(cls, body: dict[str, Any]) -> XmlReply:
        items = body["Articles"]["item"]
        items = items if isinstance(items, list) else [items]  # one article: no repeat
        return cls([Article(**_fields_from_xml(Article, item)) for item in items])


@dataclass(frozen=True)
class _ReplaceNameReply(XmlReply):
    """A reply that relabels the clicked button for the clicking user only."""

    replace_name: str


@dataclass(frozen=True)
class UpdateButtonReply(_ReplaceNameReply):
    """Relabel a template card's button after template_card_event (更新点击用户的按钮文案)."""

    msg_type: ClassVar[str] = "update_button"
    wrapper: ClassVar[str | None] = "Button"


@dataclass(frozen=True)
class UpdateTaskcardReply(_ReplaceNameReply):
    """Relabel a legacy task card's button after taskcard_click."""

    msg_type: ClassVar[str] = "update_taskcard"
    wrapper: ClassVar[str | None] = "TaskCard"


@dataclass(frozen=True)
class UpdateTemplateCardReply(XmlReply):
    """Replace the clicking user's template card after template_card_event.

    ``card`` uses the snake_case schema of doc 101032 and must name its ``card_type``; it is
    stored in the text form the XML carries (see the module docstring).
    """

    msg_type: ClassVar[str] = "update_template_card"
    card: Mapping[str, Any] = field(hash=False)

    def __post_init__(self) -> None:
        if not isinstance(self.card, Mapping):
            raise ReplyError("a template card must be a mapping")
        card = _xml_card_value(self.card, "template_card")
        if not isinstance(card, dict) or not card.get("card_type"):
            raise ReplyError("a template card needs a card_type")
        object.__setattr__(self, "card", card)

    def _body(self) -> dict[str, XmlValue]:
        return {"TemplateCard": _rename_keys(self.card, _card_xml_name)}

    @classmethod
    def _from_body(cls, body: dict[str, Any]) -> XmlReply:
        # The constructor turns single elements of list keys back into lists.
        return cls(_rename_keys(body["TemplateCard"], _card_key))


@dataclass(frozen=True)
class JsonReply(Reply):
    """Base of the AI-bot (智能机器人) JSON replies of doc 101031."""

    format: ClassVar[Literal["xml", "json"]] = "json"
    #: The reply's ``msgtype`` (``response_type`` for :class:`BotUpdateTemplateCardReply`).
    reply_type: ClassVar[str]

    #: True when the payload holds only immutable values: the JSON written to check the
    #: reply is then kept and rendered, not written a second time.
    _immutable: ClassVar[bool] = False

    def __post_init__(self) -> None:
        text = _dump_json(self._payload())
        if self._immutable:
            object.__setattr__(self, "_json", text)

    @abc.abstractmethod
    def _payload(self) -> dict[str, Any]:
        """The reply as a JSON object."""

    @classmethod
    @abc.abstractmethod
    def _from_payload(cls, payload: dict[str, Any]) -> JsonReply:
        """Rebuild the reply from its decoded JSON."""

    def _render(self, message: Message, clock: Callable[[], float]) -> str:
        kept: str | None = self.__dict__.get("_json")
        return kept if kept is not None else _dump_json(self._payload())


@dataclass(frozen=True)
class StreamImage:
    """An image of a finished stream reply: base64 of the JPG/PNG bytes and their MD5."""

    base64: str
    md5: str

    def __post_init__(self) -> None:
        if len(self.base64) > -(-MAX_STREAM_IMAGE_BYTES // 3) * 4:
            raise ReplyError(f"a stream image may hold at most {MAX_STREAM_IMAGE_BYTES} bytes")

    @classmethod
    def from_bytes(cls, data: bytes) -> StreamImage:
        """Encode raw JPG or PNG bytes."""
        if len(data) > MAX_STREAM_IMAGE_BYTES:
            raise ReplyError(f"a stream image may hold at most {MAX_STREAM_IMAGE_BYTES} bytes")
        return cls(
            base64=base64_codec.b64encode(data).decode("ascii"),
            md5=hashlib.md5(data, usedforsecurity=False).hexdigest(),
        )


@dataclass(frozen=True)
class StreamReply(JsonReply):
    """Stream reply (流式消息): the whole content so far, cumulative, as markdown.

    ``content`` over :data:`MAX_STREAM_BYTES` keeps its last bytes; ``msg_items`` (at most
    :data:`MAX_STREAM_IMAGES`) only with ``finish=True``; ``feedback_id`` at most
    :data:`MAX_FEEDBACK_ID_BYTES` bytes.
    """

    reply_type: ClassVar[str] = "stream"
    _immutable: ClassVar[bool] = True
    id: str
    content: str = ""
    finish: bool = False
    msg_items: Sequence[StreamImage] = ()
    feedback_id: str | None = None

    def __post_init__(self) -> None:
        _require_utf8(self.content, "stream content")
        object.__setattr__(self, "content", truncate_utf8_tail(self.content, MAX_STREAM_BYTES))
        object.__setattr__(self, "msg_items", tuple(self.msg_items))
        if self.msg_items and not self.finish:
            raise ReplyError("stream images (msg_item) are allowed only with finish=True")
        if len(self.msg_items) > MAX_STREAM_IMAGES:
            raise ReplyError(f"a stream reply holds at most {MAX_STREAM_IMAGES} images")
        if self.feedback_id is not None and _utf8_length(self.feedback_id) > MAX_FEEDBACK_ID_BYTES:
            raise ReplyError(f"feedback id is longer than {MAX_FEEDBACK_ID_BYTES} bytes")
        super().__post_init__()

    def _stream_object(self) -> dict[str, Any]:
        stream: dict[str, Any] = {"id": self.id, "finish": self.finish, "content": self.content}
        if self.msg_items:
            stream["msg_item"] = [
                {"msgtype": "image", "image": {"base64": item.base64, "md5": item.md5}}
                for item in self.msg_items
            ]
        if self.feedback_id is not None:
            stream["feedback"] = {"id": self.feedback_id}
        return stream

    @classmethod
    def _from_stream_object(cls, stream: dict[str, Any]) -> StreamReply:
        return cls(
            id=stream["id"],
            content=stream.get("content", ""),
            finish=stream.get("finish", False),
            msg_items=[
                StreamImage(base64=item["image"]["base64"], md5=item["image"]["md5"])
                for item in stream.get("msg_item", ())
            ],
            feedback_id=stream["feedback"]["id"] if "feedback" in stream else None,
        )

    def _payload(self) -> dict[str, Any]:
        return {"msgtype": self.reply_type, "stream": self._stream_object()}

    @classmethod
    def _from_payload(cls, payload: dict[str, Any]) -> JsonReply:
        return cls._from_stream_object(payload["stream"])


@dataclass(frozen=True)
class WelcomeTextReply(JsonReply):
    """Plain-text welcome, allowed only for the AI-bot enter_chat event."""

    reply_type: ClassVar[str] = "text"
    _immutable: ClassVar[bool] = True
    content: str

    def _payload(self) -> dict[str, Any]:
        return {"msgtype": self.reply_type, "text": {"content": self.content}}

    @classmethod
    def _from_payload(cls, payload: dict[str, Any]) -> JsonReply:
        return cls(payload["text"]["content"])


@dataclass(frozen=True)
class TemplateCardReply(JsonReply):
    """A template card (模板卡片) answering an AI-bot message or enter_chat."""

    reply_type: ClassVar[str] = "template_card"
    card: Mapping[str, Any] = field(hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "card", _json_card(self.card))
        super().__post_init__()

    def _payload(self) -> dict[str, Any]:
        return {"msgtype": self.reply_type, "template_card": self.card}

    @classmethod
    def _from_payload(cls, payload: dict[str, Any]) -> JsonReply:
        return cls(payload["template_card"])


@dataclass(frozen=True)
class StreamWithTemplateCardReply(JsonReply):
    """A stream reply plus a card; the card may be sent only once per message."""

    reply_type: ClassVar[str] = "stream_with_template_card"
    stream: StreamReply
    card: Mapping[str, Any] = field(hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "card", _json_card(self.card))
        super().__post_init__()

    def _payload(self) -> dict[str, Any]:
        return {
            "msgtype": self.reply_type,
            "stream": self.stream._stream_object(),
            "template_card": self.card,
        }

    @classmethod
    def _from_payload(cls, payload: dict[str, Any]) -> JsonReply:
        return cls(StreamReply._from_stream_object(payload["stream"]), payload["template_card"])


@dataclass(frozen=True)
class BotUpdateTemplateCardReply(JsonReply):
    """Replace the card after an AI-bot template_card_event.

    ``userids`` None updates the card for everyone. The card's ``task_id`` must be the event's.
    """

    reply_type: ClassVar[str] = "update_template_card"
    card: Mapping[str, Any] = field(hash=False)
    userids: Sequence[str] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "card", _json_card(self.card))
        if self.userids is not None:
            object.__setattr__(self, "userids", tuple(self.userids))
        super().__post_init__()

    def _payload(self) -> dict[str, Any]:
        payload: dict[str, Any] = {"response_type": self.reply_type}
        if self.userids is not None:
            payload["userids"] = list(self.userids)
        payload["template_card"] = self.card
        return payload

    @classmethod
    def _from_payload(cls, payload: dict[str, Any]) -> JsonReply:
        return cls(payload["template_card"], payload.get("userids"))

    def _render(self, message: Message, clock: Callable[[], float]) -> str:
        event = message.template_card_event if isinstance(message, BotTemplateCardEvent) else None
        expected = event.task_id if event is not None else None
        if expected is not None and self.card.get("task_id") != expected:
            raise ReplyError("the card's task_id must equal the template_card_event's task_id")
        return super()._render(message, clock)


# --------------------------------------------------------------------------- the reply table

_ORDINARY_APP_REPLIES: tuple[type[Reply], ...] = (
    TextReply,
    ImageReply,
    VoiceReply,
    VideoReply,
    NewsReply,
)

#: Which replies each callback accepts: (channel, type, event) -> reply classes. The type ``*``
#: stands for any message that is not an event (ordinary messages can always be answered);
#: anything not listed, including every suite callback, accepts only an empty reply.
#: Sources: doc 90241 "支持被动回复的事件类型" and docs 101031/101027 for the AI bot.
ALLOWED_REPLIES: Mapping[tuple[Channel, str, str], tuple[type[Reply], ...]] = MappingProxyType(
    {
        ("app", "*", ""): _ORDINARY_APP_REPLIES,
        **{
            ("app", "event", event): _ORDINARY_APP_REPLIES
            for event in (
                "subscribe",
                "enter_agent",
                "location",
                "click",
                "view",
                "view_miniprogram",
                "scancode_waitmsg",
                "template_card_menu_event",
            )
        },
        ("app", "event", "template_card_event"): (UpdateButtonReply, UpdateTemplateCardReply),
        ("app", "event", "taskcard_click"): (UpdateTaskcardReply,),
        ("aibot", "*", ""): (StreamReply, TemplateCardReply, StreamWithTemplateCardReply),
        ("aibot", "stream", ""): (StreamReply, StreamWithTemplateCardReply),
        ("aibot", "event", "enter_chat"): (WelcomeTextReply, TemplateCardReply),
        ("aibot", "event", "template_card_event"): (BotUpdateTemplateCardReply,),
        ("aibot", "event", "feedback_event"): (),
    }
)


def allowed_replies(message: Message) -> tuple[type[Reply], ...]:
    """The reply classes :data:`ALLOWED_REPLIES` allows for ``message`` (empty: none)."""
    allowed = ALLOWED_REPLIES.get((message.channel, message.type, message.event))
    if allowed is None and not message.is_event:
        allowed = ALLOWED_REPLIES.get((message.channel, "*", ""))
    return allowed or ()


_XML_REPLIES: dict[str, type[XmlReply]] = {
    cls.msg_type: cls
    for cls in (
        TextReply,
        ImageReply,
        VoiceReply,
        VideoReply,
        NewsReply,
        UpdateButtonReply,
        UpdateTemplateCardReply,
        UpdateTaskcardReply,
    )
}
_JSON_REPLIES: dict[str, type[JsonReply]] = {
    cls.reply_type: cls
    for cls in (
        StreamReply,
        WelcomeTextReply,
        TemplateCardReply,
        StreamWithTemplateCardReply,
        BotUpdateTemplateCardReply,
    )
}


def parse_reply(plaintext: str | bytes) -> Reply:
    """Read a rendered reply plaintext back into its reply object.

    ``parse_reply(reply.render(message)) == reply`` for every reply; the addressing fields
    (ToUserName, FromUserName, CreateTime) are not part of the reply object.

    :raises ParseError: the plaintext is not a reply this module writes.
    """
    try:
        text = plaintext.decode("utf-8") if isinstance(plaintext, bytes) else plaintext
        first = text.lstrip()[:1]
        if first == "<":
            body = xml_to_dict(text)
            return _XML_REPLIES[body["MsgType"]]._from_body(body)
        if first == "{":
            payload = json.loads(text)
            key = payload["msgtype"] if "msgtype" in payload else payload["response_type"]
            return _JSON_REPLIES[key]._from_payload(payload)
    except (KeyError, TypeError, AttributeError, ValueError) as exc:  # ReplyError is a ValueError
        raise ParseError(f"not a reply flask_wecom can read: {type(exc).__name__}") from exc
    raise ParseError("a reply is XML or a JSON object")
