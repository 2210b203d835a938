"""Typed models for decrypted WeCom (企业微信) callbacks.

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

This module imports nothing web-related.
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
    "ApprovalItem",
    "ApprovalItems",
    "ApprovalNode",
    "ApprovalNodes",
    "BatchJob",
    "BatchJobResultEvent",
    "BotCardEvent",
    "BotEvent",
    "BotFeedback",
    "BotFeedbackEvent",
    "BotFileMessage",
    "BotImageMessage",
    "BotMedia",
    "BotMessage",
    "BotMixed",
    "BotMixedItem",
    "BotMixedMessage",
    "BotQuote",
    "BotSender",
    "BotStreamRef",
    "BotStreamRefresh",
    "BotTemplateCardEvent",
    "BotText",
    "BotTextMessage",
    "BotVideoMessage",
    "BotVoiceMessage",
    "CalendarEvent",
    "Channel",
    "ContactPartyEvent",
    "ContactTagEvent",
    "ContactUserEvent",
    "Event",
    "ExtAttr",
    "ExtAttrItem",
    "ExtAttrText",
    "ExtAttrWeb",
    "ExternalChatEvent",
    "ExternalContactEvent",
    "ExternalTagEvent",
    "ImageMessage",
    "InactiveAlertEvent",
    "KfMsgOrEvent",
    "LinkMessage",
    "LocationEvent",
    "LocationMessage",
    "LocationSelectEvent",
    "MeetingRoomEvent",
    "Message",
    "Node",
    "NotifyNode",
    "NotifyNodes",
    "OpenApprovalChangeEvent",
    "OpenApprovalInfo",
    "OptionIds",
    "PicItem",
    "PicList",
    "ScanCodeEvent",
    "ScanCodeInfo",
    "ScheduleEvent",
    "SelectedItem",
    "SelectedItems",
    "SendLocationInfo",
    "SendPicsEvent",
    "SendPicsInfo",
    "SpRecord",
    "SpRecordDetail",
    "SuiteAuthChange",
    "SuiteCallback",
    "SuiteContactPartyChange",
    "SuiteContactTagChange",
    "SuiteContactUserChange",
    "SuiteTicket",
    "SysApprovalChangeEvent",
    "SysApprovalInfo",
    "TaskCardClickEvent",
    "TemplateCardEvent",
    "TextMessage",
    "UnknownEvent",
    "UnknownMessage",
    "UserRef",
    "VideoMessage",
    "VoiceMessage",
    "parse_message",
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

    Typed subclasses declare the documented children; any other child is reached through
    ``__getattr__`` on :attr:`raw`.
    """

    #: The element's children exactly as received (see the module docstring).
    raw: dict[str, Any] = field(default_factory=dict, repr=False, hash=False)

    def _attribute_sources(self) -> Iterator[Mapping[str, Any]]:
        yield self.raw

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name == "raw":
            raise AttributeError(name)
        for source in self._attribute_sources():
            for key, value in source.items():
                if snake_case(key) == name:
                    return _attribute_value(value)
        raise AttributeError(f"{type(self).__name__} has no field {name!r}")


@dataclass(frozen=True, kw_only=True)
class Message(Node):
    """Base of every callback model.

    Usage::

        message = parse_message(plaintext)
        if message.type == "text":
            greeting = f"{message.from_user_name} says {message.content}"
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


def _register(channel: Channel, *paths: str) -> Callable[[type[M]], type[M]]:
    """Register a model for ``type[/event[/change_type]]`` paths of one channel."""

    def decorate(cls: type[M]) -> type[M]:
        for path in paths:
            if (channel, path) in _REGISTRY:
                raise RuntimeError(f"{channel}:{path} is registered twice")
            _REGISTRY[channel, path] = cls
        return cls

    return decorate


def registered_paths() -> dict[tuple[Channel, str], type[Message]]:
    """Return a copy of the model registry: (channel, ``type/event/change_type``) -> model."""
    return dict(_REGISTRY)


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


# --------------------------------------------------------------------------- nested elements


@dataclass(frozen=True, kw_only=True)
class BatchJob(Node):
    """``BatchJob`` of batch_job_result (异步任务完成)."""

    job_id: str | None = None
    job_type: str | None = None
    err_code: int | None = None
    err_msg: str | None = None


@dataclass(frozen=True, kw_only=True)
class ExtAttrText(Node):
    """Text value of a custom contact attribute."""

    value: str | None = None


@dataclass(frozen=True, kw_only=True)
class ExtAttrWeb(Node):
    """Web-link value of a custom contact attribute."""

    title: str | None = None
    url: str | None = None


@dataclass(frozen=True, kw_only=True)
class ExtAttrItem(Node):
    """One custom contact attribute (扩展属性): Type 0 text, 1 web."""

    name: str | None = None
    type: int | None = None
    text: ExtAttrText | None = None
    web: ExtAttrWeb | None = None


@dataclass(frozen=True, kw_only=True)
class ExtAttr(Node):
    """``ExtAttr`` of a contact change: repeated ``Item``."""

    item: tuple[ExtAttrItem, ...] = ()


@dataclass(frozen=True, kw_only=True)
class ScanCodeInfo(Node):
    """``ScanCodeInfo`` of scancode_push / scancode_waitmsg."""

    scan_type: str | None = None
    scan_result: str | None = None


@dataclass(frozen=True, kw_only=True)
class PicItem(Node):
    """One picture of ``SendPicsInfo/PicList``."""

    pic_md5_sum: str | None = None


@dataclass(frozen=True, kw_only=True)
class PicList(Node):
    """``PicList``: repeated ``item``."""

    item: tuple[PicItem, ...] = ()


@dataclass(frozen=True, kw_only=True)
class SendPicsInfo(Node):
    """``SendPicsInfo`` of the pic_* menu events."""

    count: int | None = None
    pic_list: PicList | None = None


@dataclass(frozen=True, kw_only=True)
class SendLocationInfo(Node):
    """``SendLocationInfo`` of location_select."""

    location_x: float | None = None
    location_y: float | None = None
    scale: int | None = None
    label: str | None = None
    poiname: str | None = None


@dataclass(frozen=True, kw_only=True)
class ApprovalItem(Node):
    """One approver of an approval node (审批节点分支)."""

    item_name: str | None = None
    item_user_id: str | None = None
    item_image: str | None = None
    item_status: int | None = None
    item_speech: str | None = None
    item_op_time: int | None = None


@dataclass(frozen=True, kw_only=True)
class ApprovalItems(Node):
    """``Items``: repeated ``Item``."""

    item: tuple[ApprovalItem, ...] = ()


@dataclass(frozen=True, kw_only=True)
class ApprovalNode(Node):
    """One ``ApprovalNode`` of open_approval_change."""

    node_status: int | None = None
    node_attr: int | None = None
    node_type: int | None = None
    items: ApprovalItems | None = None


@dataclass(frozen=True, kw_only=True)
class ApprovalNodes(Node):
    """``ApprovalNodes``: repeated ``ApprovalNode``."""

    approval_node: tuple[ApprovalNode, ...] = ()


@dataclass(frozen=True, kw_only=True)
class NotifyNode(Node):
    """One member notified (抄送人) of an approval."""

    item_name: str | None = None
    item_user_id: str | None = None
    item_image: str | None = None


@dataclass(frozen=True, kw_only=True)
class NotifyNodes(Node):
    """``NotifyNodes``: repeated ``NotifyNode``."""

    notify_node: tuple[NotifyNode, ...] = ()


@dataclass(frozen=True, kw_only=True)
class OpenApprovalInfo(Node):
    """``ApprovalInfo`` of open_approval_change (第三方审批)."""

    third_no: str | None = None
    open_sp_name: str | None = None
    open_template_id: str | None = None
    open_sp_status: int | None = None
    apply_time: int | None = None
    apply_user_name: str | None = None
    apply_user_id: str | None = None
    apply_user_party: str | None = None
    apply_user_image: str | None = None
    approval_nodes: ApprovalNodes | None = None
    notify_nodes: NotifyNodes | None = None
    approverstep: int | None = None


@dataclass(frozen=True, kw_only=True)
class UserRef(Node):
    """An element holding a member's ``UserId`` (and sometimes ``Party``)."""

    user_id: str | None = None
    party: str | None = None


@dataclass(frozen=True, kw_only=True)
class SpRecordDetail(Node):
    """One approver's action in a ``SpRecord``."""

    approver: UserRef | None = None
    speech: str | None = None
    sp_status: int | None = None
    sp_time: int | None = None


@dataclass(frozen=True, kw_only=True)
class SpRecord(Node):
    """One approval step (审批流程) of sys_approval_change."""

    sp_status: int | None = None
    approver_attr: int | None = None
    details: tuple[SpRecordDetail, ...] = ()


@dataclass(frozen=True, kw_only=True)
class SysApprovalInfo(Node):
    """``ApprovalInfo`` of sys_approval_change (审批申请状态变化)."""

    sp_no: str | None = None
    sp_name: str | None = None
    sp_status: int | None = None
    template_id: str | None = None
    apply_time: int | None = None
    applyer: UserRef | None = None
    sp_record: tuple[SpRecord, ...] = ()
    notifyer: tuple[UserRef, ...] = ()
    statu_change_event: int | None = None


@dataclass(frozen=True, kw_only=True)
class OptionIds(Node):
    """``OptionIds``: the chosen option ids of one question."""

    option_id: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class SelectedItem(Node):
    """One answered question of an interactive template card."""

    question_key: str | None = None
    option_ids: OptionIds | None = None


@dataclass(frozen=True, kw_only=True)
class SelectedItems(Node):
    """``SelectedItems``: repeated ``SelectedItem``."""

    selected_item: tuple[SelectedItem, ...] = ()


# --------------------------------------------------------------------------- app messages


@_register("app", "text")
@dataclass(frozen=True, kw_only=True)
class TextMessage(Message):
    """Text message (文本消息); the text is :attr:`Message.content`."""


@_register("app", "image")
@dataclass(frozen=True, kw_only=True)
class ImageMessage(Message):
    """Image message (图片消息)."""

    pic_url: str | None = None
    media_id: str | None = None


@_register("app", "voice")
@dataclass(frozen=True, kw_only=True)
class VoiceMessage(Message):
    """Voice message (语音消息); ``format`` is amr, speex, ..."""

    media_id: str | None = None
    format: str | None = None


@_register("app", "video")
@dataclass(frozen=True, kw_only=True)
class VideoMessage(Message):
    """Video message (视频消息)."""

    media_id: str | None = None
    thumb_media_id: str | None = None


@_register("app", "location")
@dataclass(frozen=True, kw_only=True)
class LocationMessage(Message):
    """Location message (位置消息): latitude ``location_x``, longitude ``location_y``."""

    location_x: float | None = None
    location_y: float | None = None
    scale: int | None = None
    label: str | None = None
    app_type: str | None = None


@_register("app", "link")
@dataclass(frozen=True, kw_only=True)
class LinkMessage(Message):
    """Link message (链接消息)."""

    title: str | None = None
    description: str | None = None
    url: str | None = None
    pic_url: str | None = None


# --------------------------------------------------------------------------- app events


@_register(
    "app",
    "event/subscribe",
    "event/unsubscribe",
    "event/enter_agent",
    "event/change_contact",
    "event/click",
    "event/view",
    "event/view_miniprogram",
    "event/share_agent_change",
    "event/share_chain_change",
    "event/close_inactive_agent",
    "event/reopen_inactive_agent",
    "event/low_active",
    "event/active_restored",
    "event/change_app_admin",
)
@dataclass(frozen=True, kw_only=True)
class Event(Message):
    """An app event whose fields are all common ones (``agent_id``, ``event_key``).

    Used for subscribe/unsubscribe (关注/取消关注), enter_agent (进入应用), the click/view/
    view_miniprogram menu events, share_agent_change (企业互联共享应用), share_chain_change
    (上下游共享应用), the inactive-app family, change_app_admin (应用管理员变更), and a
    change_contact whose ChangeType is not known yet.
    """


@_register("aibot", "event")
@_register("app", "event")
@dataclass(frozen=True, kw_only=True)
class UnknownEvent(Event):
    """An event (app or AI bot) with no registered model; everything is in :attr:`raw`."""


@_register("app", "event/location")
@dataclass(frozen=True, kw_only=True)
class LocationEvent(Event):
    """Location report (上报地理位置, ``Event=LOCATION``)."""

    latitude: float | None = None
    longitude: float | None = None
    precision: float | None = None
    app_type: str | None = None


@_register("app", "event/batch_job_result")
@dataclass(frozen=True, kw_only=True)
class BatchJobResultEvent(Event):
    """Asynchronous job finished (异步任务完成)."""

    batch_job: BatchJob | None = None


@dataclass(frozen=True, kw_only=True)
class _ContactUserFields:
    """Member fields of change_contact create_user / update_user / delete_user."""

    user_id: str | None = None
    new_user_id: str | None = None
    name: str | None = None
    #: Department ids as sent, comma-separated ("1,2,3").
    department: str | None = None
    main_department: int | None = None
    #: One flag per department, comma-separated ("1,0,0").
    is_leader_in_dept: str | None = None
    direct_leader: str | None = None
    position: str | None = None
    mobile: str | None = None
    gender: int | None = None
    email: str | None = None
    biz_mail: str | None = None
    status: int | None = None
    avatar: str | None = None
    alias: str | None = None
    telephone: str | None = None
    address: str | None = None
    ext_attr: ExtAttr | None = None


@dataclass(frozen=True, kw_only=True)
class _ContactPartyFields:
    """Department fields of change_contact create_party / update_party / delete_party."""

    id: int | None = None
    name: str | None = None
    parent_id: int | None = None
    order: int | None = None


@dataclass(frozen=True, kw_only=True)
class _ContactTagFields:
    """Tag fields of change_contact update_tag; the item lists are comma-separated ids."""

    tag_id: int | None = None
    add_user_items: str | None = None
    del_user_items: str | None = None
    add_party_items: str | None = None
    del_party_items: str | None = None


@_register(
    "app",
    "event/change_contact/create_user",
    "event/change_contact/update_user",
    "event/change_contact/delete_user",
)
@dataclass(frozen=True, kw_only=True)
class ContactUserEvent(Event, _ContactUserFields):
    """Member created, updated or deleted (通讯录变更: 成员)."""


@_register(
    "app",
    "event/change_contact/create_party",
    "event/change_contact/update_party",
    "event/change_contact/delete_party",
)
@dataclass(frozen=True, kw_only=True)
class ContactPartyEvent(Event, _ContactPartyFields):
    """Department created, updated or deleted (通讯录变更: 部门)."""


@_register("app", "event/change_contact/update_tag")
@dataclass(frozen=True, kw_only=True)
class ContactTagEvent(Event, _ContactTagFields):
    """Tag members changed (标签成员变更)."""


@_register("app", "event/scancode_push", "event/scancode_waitmsg")
@dataclass(frozen=True, kw_only=True)
class ScanCodeEvent(Event):
    """Menu scan-code events (扫码推事件)."""

    scan_code_info: ScanCodeInfo | None = None


@_register("app", "event/pic_sysphoto", "event/pic_photo_or_album", "event/pic_weixin")
@dataclass(frozen=True, kw_only=True)
class SendPicsEvent(Event):
    """Menu picture events (发图)."""

    send_pics_info: SendPicsInfo | None = None


@_register("app", "event/location_select")
@dataclass(frozen=True, kw_only=True)
class LocationSelectEvent(Event):
    """Menu location picker (弹出地理位置选择器)."""

    send_location_info: SendLocationInfo | None = None
    app_type: str | None = None


@_register("app", "event/open_approval_change")
@dataclass(frozen=True, kw_only=True)
class OpenApprovalChangeEvent(Event):
    """Third-party approval status changed (审批状态通知)."""

    approval_info: OpenApprovalInfo | None = None


@_register("app", "event/template_card_event", "event/template_card_menu_event")
@dataclass(frozen=True, kw_only=True)
class TemplateCardEvent(Event):
    """Template card button or menu clicked (模板卡片事件 / 右上角菜单事件)."""

    task_id: str | None = None
    card_type: str | None = None
    response_code: str | None = None
    selected_items: SelectedItems | None = None


@_register("app", "event/inactive_alert", "event/low_active_alert")
@dataclass(frozen=True, kw_only=True)
class InactiveAlertEvent(Event):
    """The app will be disabled for inactivity at ``effect_time`` (长期未使用应用停用预警)."""

    effect_time: int | None = None


@_register("app", "event/taskcard_click")
@dataclass(frozen=True, kw_only=True)
class TaskCardClickEvent(Event):
    """Legacy task card clicked (任务卡片事件)."""

    task_id: str | None = None


@_register("app", "event/change_external_contact")
@dataclass(frozen=True, kw_only=True)
class ExternalContactEvent(Event):
    """Customer contact changed (客户联系: 企业客户事件); fields depend on ``change_type``."""

    user_id: str | None = None
    external_user_id: str | None = None
    state: str | None = None
    welcome_code: str | None = None
    source: str | None = None
    fail_reason: str | None = None


@_register("app", "event/change_external_chat")
@dataclass(frozen=True, kw_only=True)
class ExternalChatEvent(Event):
    """Customer group chat created, updated or dismissed (客户群事件)."""

    chat_id: str | None = None
    update_detail: str | None = None
    join_scene: int | None = None
    quit_scene: int | None = None
    mem_change_cnt: int | None = None


@_register("app", "event/change_external_tag")
@dataclass(frozen=True, kw_only=True)
class ExternalTagEvent(Event):
    """Customer tag created, updated, deleted or reordered (企业客户标签事件)."""

    id: str | None = None
    tag_type: str | None = None
    strategy_id: int | None = None


@_register("app", "event/sys_approval_change")
@dataclass(frozen=True, kw_only=True)
class SysApprovalChangeEvent(Event):
    """Approval application status changed (审批申请状态变化)."""

    approval_info: SysApprovalInfo | None = None


@_register("app", "event/kf_msg_or_event")
@dataclass(frozen=True, kw_only=True)
class KfMsgOrEvent(Event):
    """WeChat customer service (微信客服) has messages to pull with ``token``."""

    token: str | None = None
    open_kf_id: str | None = None


@_register("app", "event/modify_calendar", "event/delete_calendar")
@dataclass(frozen=True, kw_only=True)
class CalendarEvent(Event):
    """Calendar modified or deleted (日历事件)."""

    cal_id: str | None = None


@_register("app", "event/add_schedule", "event/modify_schedule", "event/delete_schedule")
@dataclass(frozen=True, kw_only=True)
class ScheduleEvent(CalendarEvent):
    """Schedule added, modified or deleted (日程事件)."""

    schedule_id: str | None = None


@_register("app", "event/book_meeting_room", "event/cancel_meeting_room")
@dataclass(frozen=True, kw_only=True)
class MeetingRoomEvent(Event):
    """Meeting room booked or cancelled (会议室预定事件)."""

    meeting_room_id: str | None = None
    meeting_id: str | None = None


# --------------------------------------------------------------------------- suite callbacks


@_register("suite", "change_contact", "share_agent_change", "change_app_admin")
@dataclass(frozen=True, kw_only=True)
class SuiteCallback(Message):
    """A third-party suite command callback (指令回调), keyed by ``InfoType``.

    Used directly for share_agent_change, change_app_admin and a change_contact whose
    ChangeType is not known yet.
    """

    suite_id: str | None = None
    auth_corp_id: str | None = None
    time_stamp: int | None = None


@_register("suite", "suite_ticket")
@dataclass(frozen=True, kw_only=True)
class SuiteTicket(SuiteCallback):
    """suite_ticket push (推送suite_ticket), every 10 minutes."""

    suite_ticket: str | None = None


@_register("suite", "create_auth", "change_auth", "cancel_auth", "reset_permanent_code")
@dataclass(frozen=True, kw_only=True)
class SuiteAuthChange(SuiteCallback):
    """Authorisation created, changed or cancelled, or permanent code reset (授权通知)."""

    auth_code: str | None = None
    state: str | None = None


@_register(
    "suite",
    "change_contact/create_user",
    "change_contact/update_user",
    "change_contact/delete_user",
)
@dataclass(frozen=True, kw_only=True)
class SuiteContactUserChange(SuiteCallback, _ContactUserFields):
    """Suite contact change for a member (成员变更通知)."""


@_register(
    "suite",
    "change_contact/create_party",
    "change_contact/update_party",
    "change_contact/delete_party",
)
@dataclass(frozen=True, kw_only=True)
class SuiteContactPartyChange(SuiteCallback, _ContactPartyFields):
    """Suite contact change for a department (部门变更通知)."""


@_register("suite", "change_contact/update_tag")
@dataclass(frozen=True, kw_only=True)
class SuiteContactTagChange(SuiteCallback, _ContactTagFields):
    """Suite contact change for a tag (标签成员变更通知)."""


# --------------------------------------------------------------------------- AI bot payloads


@dataclass(frozen=True, kw_only=True)
class BotSender(Node):
    """AI-bot ``from``: the sender (``corpid`` only on some events)."""

    userid: str | None = None
    corpid: str | None = None


@dataclass(frozen=True, kw_only=True)
class BotText(Node):
    """AI-bot ``text`` or ``voice`` (speech already converted to text)."""

    content: str | None = None


@dataclass(frozen=True, kw_only=True)
class BotMedia(Node):
    """AI-bot ``image``, ``file`` or ``video``: an encrypted download URL valid 5 minutes."""

    url: str | None = None


@dataclass(frozen=True, kw_only=True)
class BotMixedItem(Node):
    """One part of a mixed (图文混排) message."""

    msgtype: str | None = None
    text: BotText | None = None
    image: BotMedia | None = None


@dataclass(frozen=True, kw_only=True)
class BotMixed(Node):
    """AI-bot ``mixed``."""

    msg_item: tuple[BotMixedItem, ...] = ()


@dataclass(frozen=True, kw_only=True)
class BotQuote(Node):
    """The quoted message of an AI-bot message (引用)."""

    msgtype: str | None = None
    text: BotText | None = None
    image: BotMedia | None = None
    mixed: BotMixed | None = None
    voice: BotText | None = None
    file: BotMedia | None = None
    video: BotMedia | None = None


@dataclass(frozen=True, kw_only=True)
class BotStreamRef(Node):
    """AI-bot ``stream`` of a refresh poll (流式消息刷新)."""

    id: str | None = None


@dataclass(frozen=True, kw_only=True)
class BotCardEvent(Node):
    """Details of an AI-bot template_card_event."""

    card_type: str | None = None
    event_key: str | None = None
    task_id: str | None = None
    selected_items: SelectedItems | None = None


@dataclass(frozen=True, kw_only=True)
class BotFeedback(Node):
    """Details of an AI-bot feedback_event: ``type`` 1 accurate, 2 inaccurate, 3 cancelled."""

    id: str | None = None
    type: int | None = None
    content: str | None = None
    inaccurate_reason_list: tuple[int, ...] = ()


@dataclass(frozen=True, kw_only=True)
class BotMessage(Message):
    """Base of AI-bot (智能机器人) payloads: the common fields."""

    aibotid: str | None = None
    chatid: str | None = None
    #: ``single`` or ``group``.
    chattype: str | None = None
    response_url: str | None = None
    from_: BotSender | None = None
    quote: BotQuote | None = None


@_register("aibot", "text")
@dataclass(frozen=True, kw_only=True)
class BotTextMessage(BotMessage):
    """AI-bot text; in groups the content includes the @mention."""

    text: BotText | None = None


@_register("aibot", "image")
@dataclass(frozen=True, kw_only=True)
class BotImageMessage(BotMessage):
    """AI-bot image (single chat only)."""

    image: BotMedia | None = None


@_register("aibot", "mixed")
@dataclass(frozen=True, kw_only=True)
class BotMixedMessage(BotMessage):
    """AI-bot mixed text and images."""

    mixed: BotMixed | None = None


@_register("aibot", "voice")
@dataclass(frozen=True, kw_only=True)
class BotVoiceMessage(BotMessage):
    """AI-bot voice, already converted to text (single chat only)."""

    voice: BotText | None = None


@_register("aibot", "file")
@dataclass(frozen=True, kw_only=True)
class BotFileMessage(BotMessage):
    """AI-bot file (single chat only, up to 100 MB)."""

    file: BotMedia | None = None


@_register("aibot", "video")
@dataclass(frozen=True, kw_only=True)
class BotVideoMessage(BotMessage):
    """AI-bot video."""

    video: BotMedia | None = None


@_register("aibot", "stream")
@dataclass(frozen=True, kw_only=True)
class BotStreamRefresh(BotMessage):
    """Stream refresh poll: answer with the latest cumulative content for ``stream.id``."""

    stream: BotStreamRef | None = None


@_register("aibot", "event/enter_chat")
@dataclass(frozen=True, kw_only=True)
class BotEvent(BotMessage):
    """AI-bot enter_chat (进入会话): first entry of the day; answer with a welcome or a card."""


@_register("aibot", "event/template_card_event")
@dataclass(frozen=True, kw_only=True)
class BotTemplateCardEvent(BotEvent):
    """AI-bot template card clicked; delivered once, answer within 5 seconds."""

    template_card_event: BotCardEvent | None = None


@_register("aibot", "event/feedback_event")
@dataclass(frozen=True, kw_only=True)
class BotFeedbackEvent(BotEvent):
    """User feedback on a stream reply; accepts only an empty reply."""

    feedback_event: BotFeedback | None = None


@dataclass(frozen=True, kw_only=True)
class UnknownMessage(Message):
    """A well-formed callback of a type with no model; everything is in :attr:`raw`."""


# --------------------------------------------------------------------------- conversion

_COMMON_FIELDS = frozenset(f.name for f in fields(Message))
_NODE_FIELDS = frozenset(f.name for f in fields(Node))


class _Shape(NamedTuple):
    """What building one model class needs, worked out once per class."""

    #: (name, annotation) of the fields it declares beyond its base's common fields.
    typed: tuple[tuple[str, Any], ...]
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
            tuple((f.name, hints[f.name]) for f in every if f.name not in common),
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
    for name, hint in typed:
        if name in by_name:
            values[name] = _convert(hint, by_name[name])
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
    if "msgtype" in document:
        return _bot_message(document)
    return _app_message(document)
