"""The callback models of WeCom (企业微信): one frozen dataclass per documented callback.

Declarative tables only: the engine that builds them (nodes, the registry, lenient conversion,
:func:`parse_message`) lives in :mod:`flask_wecom.model`, and its public names are re-exported
here, so ``from flask_wecom.messages import Message, parse_message`` keeps working.

Each model is registered for its callback paths with the page that documents them;
:func:`callback_table` lists every one (it is published as ``docs/events.md``). The rules every
model follows (naming, lenient conversion, repeated elements) are in :mod:`flask_wecom.model`.
"""

from __future__ import annotations

from dataclasses import dataclass

from .model import (
    DOC_BASE,
    CallbackModel,
    Channel,
    Message,
    Node,
    UnknownMessage,
    callback_table,
    parse_message,
    register,
    registered_paths,
    snake_case,
    xml_to_dict,
)

__all__ = [
    "ApprovalItem",
    "ApprovalItems",
    "ApprovalNode",
    "ApprovalNodes",
    "BatchJob",
    "BatchJobResultEvent",
    "BotCardEvent",
    "BotDisconnectedEvent",
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
    "CallbackModel",
    "Channel",
    "ClickEvent",
    "ContactPartyEvent",
    "ContactSync",
    "ContactTagEvent",
    "ContactUserEvent",
    "CustomerAcquisitionEvent",
    "DOC_BASE",
    "EnterAgentEvent",
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
    "KfAccountAuthChangeEvent",
    "KfMsgOrEvent",
    "LinkMessage",
    "LivingStatusChangeEvent",
    "LocationEvent",
    "LocationMessage",
    "LocationSelectEvent",
    "MeetingRoomEvent",
    "Message",
    "MsgAuditNotifyEvent",
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
    "SchoolContactChange",
    "SchoolContactEvent",
    "SelectedItem",
    "SelectedItems",
    "SendLocationInfo",
    "SendPicsEvent",
    "SendPicsInfo",
    "SpRecord",
    "SpRecordDetail",
    "SubscribeEvent",
    "SuiteAuthChange",
    "SuiteCallback",
    "SuiteContactPartyChange",
    "SuiteContactTagChange",
    "SuiteContactUserChange",
    "SuiteConversationNewMessage",
    "SuiteCustomerAcquisition",
    "SuiteExternalChatChange",
    "SuiteExternalContactChange",
    "SuiteExternalTagChange",
    "SuiteLicenseOrder",
    "SuiteOrderChange",
    "SuiteRegisterCorp",
    "SuiteSchoolContactBatch",
    "SuiteSchoolContactChange",
    "SuiteTicket",
    "SysApprovalChangeEvent",
    "SysApprovalInfo",
    "TaskCardClickEvent",
    "TemplateCardEvent",
    "TextMessage",
    "UnknownEvent",
    "UnknownMessage",
    "UnsubscribeEvent",
    "UploadMediaJobFinishEvent",
    "UserRef",
    "VideoMessage",
    "ViewEvent",
    "ViewMiniprogramEvent",
    "VoiceMessage",
    "callback_table",
    "parse_message",
    "register",
    "registered_paths",
    "snake_case",
    "xml_to_dict",
]

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


@register("app", "text", doc="90239")
@dataclass(frozen=True, kw_only=True)
class TextMessage(Message):
    """Text message (文本消息); the text is :attr:`Message.content`."""


@register("app", "image", doc="90239")
@dataclass(frozen=True, kw_only=True)
class ImageMessage(Message):
    """Image message (图片消息)."""

    pic_url: str | None = None
    media_id: str | None = None


@register("app", "voice", doc="90239")
@dataclass(frozen=True, kw_only=True)
class VoiceMessage(Message):
    """Voice message (语音消息); ``format`` is amr, speex, ..."""

    media_id: str | None = None
    format: str | None = None


@register("app", "video", doc="90239")
@dataclass(frozen=True, kw_only=True)
class VideoMessage(Message):
    """Video message (视频消息)."""

    media_id: str | None = None
    thumb_media_id: str | None = None


@register("app", "location", doc="90239")
@dataclass(frozen=True, kw_only=True)
class LocationMessage(Message):
    """Location message (位置消息): latitude ``location_x``, longitude ``location_y``."""

    location_x: float | None = None
    location_y: float | None = None
    scale: int | None = None
    label: str | None = None
    app_type: str | None = None


@register("app", "link", doc="90239")
@dataclass(frozen=True, kw_only=True)
class LinkMessage(Message):
    """Link message (链接消息)."""

    title: str | None = None
    description: str | None = None
    url: str | None = None
    pic_url: str | None = None


# --------------------------------------------------------------------------- app events


@register(
    "app",
    "event/share_agent_change",
    "event/share_chain_change",
    "event/close_inactive_agent",
    "event/reopen_inactive_agent",
    "event/low_active",
    "event/active_restored",
    doc="90240",
)
@register("app", "event/change_contact", doc="90970")
@register("app", "event/change_app_admin", doc="95038")
@dataclass(frozen=True, kw_only=True)
class Event(Message):
    """An app event; the base of every app event model, and the model of those whose fields
    are all common ones (``agent_id``, ``event_key``).

    Used directly for share_agent_change (企业互联共享应用), share_chain_change (上下游共享应用),
    the inactive-app family, change_app_admin (应用管理员变更), and a change_contact whose
    ChangeType is not known yet.
    """


@register("app", "event/subscribe", doc="90240")
@dataclass(frozen=True, kw_only=True)
class SubscribeEvent(Event):
    """A member followed the app (成员关注)."""


@register("app", "event/unsubscribe", doc="90240")
@dataclass(frozen=True, kw_only=True)
class UnsubscribeEvent(Event):
    """A member unfollowed the app (取消关注)."""


@register("app", "event/enter_agent", doc="90240")
@dataclass(frozen=True, kw_only=True)
class EnterAgentEvent(Event):
    """A member entered the app (进入应用); ``event_key`` is empty."""


@register("app", "event/click", doc="90240")
@dataclass(frozen=True, kw_only=True)
class ClickEvent(Event):
    """A custom-menu click (点击菜单拉取消息); ``event_key`` is the button's key."""


@register("app", "event/view", doc="90240")
@dataclass(frozen=True, kw_only=True)
class ViewEvent(Event):
    """A custom-menu link opened (点击菜单跳转链接); ``event_key`` is the URL."""


@register("app", "event/view_miniprogram", doc="90240")
@dataclass(frozen=True, kw_only=True)
class ViewMiniprogramEvent(Event):
    """A custom-menu mini program opened (点击菜单跳转小程序); ``event_key`` is its page path."""


@register("app", "event/msgaudit_notify", doc="95039")
@dataclass(frozen=True, kw_only=True)
class MsgAuditNotifyEvent(Event):
    """New archived messages to pull (会话内容存档: 产生会话回调事件), at most every 15 s."""


@register("app", "event/living_status_change", doc="94145")
@dataclass(frozen=True, kw_only=True)
class LivingStatusChangeEvent(Event):
    """A live stream created through the API changed state (直播回调事件).

    ``status``: 0 booked, 1 live, 2 ended, 3 expired, 4 cancelled.
    """

    living_id: str | None = None
    status: int | None = None


@register("app", "event/upload_media_job_finish", doc="97126")
@dataclass(frozen=True, kw_only=True)
class UploadMediaJobFinishEvent(Event):
    """An asynchronous media upload finished (异步上传临时素材); query ``job_id`` for the result."""

    job_id: str | None = None


@register("app", "event/kf_account_auth_change", doc="97713")
@dataclass(frozen=True, kw_only=True)
class KfAccountAuthChangeEvent(Event):
    """WeChat customer-service accounts authorised or withdrawn (客服账号授权变更事件).

    One element per account, so both fields are tuples.
    """

    auth_add_open_kf_id: tuple[str, ...] = ()
    auth_del_open_kf_id: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class _CustomerAcquisitionFields:
    """Fields of customer_acquisition (获客助手); which ones come depends on ``change_type``."""

    link_id: str | None = None
    state: str | None = None
    user_id: str | None = None
    external_user_id: str | None = None


@register("app", "event/customer_acquisition", doc="97299")
@dataclass(frozen=True, kw_only=True)
class CustomerAcquisitionEvent(Event, _CustomerAcquisitionFields):
    """Customer acquisition (获客助手): quota low/exhausted/increased, link problems, chats."""


@dataclass(frozen=True, kw_only=True)
class _SchoolContactFields:
    """Fields of change_school_contact (家校通讯录变更): a student's, parent's or class's id."""

    id: str | None = None
    new_id: str | None = None


@register("app", "event/change_school_contact", doc="92032")
@dataclass(frozen=True, kw_only=True)
class SchoolContactEvent(Event, _SchoolContactFields):
    """A student, parent or class changed in the school contacts (家校通讯录变更)."""


@register("aibot", "event", doc="101027")
@register("app", "event", doc="90240")
@dataclass(frozen=True, kw_only=True)
class UnknownEvent(Event):
    """An event (app or AI bot) with no registered model; everything is in :attr:`raw`."""


@register("app", "event/location", doc="90240")
@dataclass(frozen=True, kw_only=True)
class LocationEvent(Event):
    """Location report (上报地理位置, ``Event=LOCATION``)."""

    latitude: float | None = None
    longitude: float | None = None
    precision: float | None = None
    app_type: str | None = None


@register("app", "event/batch_job_result", doc="90240")
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


@register(
    "app",
    "event/change_contact/create_user",
    "event/change_contact/update_user",
    "event/change_contact/delete_user",
    doc="90970",
)
@dataclass(frozen=True, kw_only=True)
class ContactUserEvent(Event, _ContactUserFields):
    """Member created, updated or deleted (通讯录变更: 成员)."""


@register(
    "app",
    "event/change_contact/create_party",
    "event/change_contact/update_party",
    "event/change_contact/delete_party",
    doc="90971",
)
@dataclass(frozen=True, kw_only=True)
class ContactPartyEvent(Event, _ContactPartyFields):
    """Department created, updated or deleted (通讯录变更: 部门)."""


@register("app", "event/change_contact/update_tag", doc="90972")
@dataclass(frozen=True, kw_only=True)
class ContactTagEvent(Event, _ContactTagFields):
    """Tag members changed (标签成员变更)."""


@register("app", "event/scancode_push", "event/scancode_waitmsg", doc="90240")
@dataclass(frozen=True, kw_only=True)
class ScanCodeEvent(Event):
    """Menu scan-code events (扫码推事件)."""

    scan_code_info: ScanCodeInfo | None = None


@register(
    "app",
    "event/pic_sysphoto",
    "event/pic_photo_or_album",
    "event/pic_weixin",
    doc="90240",
)
@dataclass(frozen=True, kw_only=True)
class SendPicsEvent(Event):
    """Menu picture events (发图)."""

    send_pics_info: SendPicsInfo | None = None


@register("app", "event/location_select", doc="90240")
@dataclass(frozen=True, kw_only=True)
class LocationSelectEvent(Event):
    """Menu location picker (弹出地理位置选择器)."""

    send_location_info: SendLocationInfo | None = None
    app_type: str | None = None


@register("app", "event/open_approval_change", doc="90240")
@dataclass(frozen=True, kw_only=True)
class OpenApprovalChangeEvent(Event):
    """Third-party approval status changed (审批状态通知)."""

    approval_info: OpenApprovalInfo | None = None


@register("app", "event/template_card_event", "event/template_card_menu_event", doc="90240")
@dataclass(frozen=True, kw_only=True)
class TemplateCardEvent(Event):
    """Template card button or menu clicked (模板卡片事件 / 右上角菜单事件)."""

    task_id: str | None = None
    card_type: str | None = None
    response_code: str | None = None
    selected_items: SelectedItems | None = None


@register("app", "event/inactive_alert", "event/low_active_alert", doc="90240")
@dataclass(frozen=True, kw_only=True)
class InactiveAlertEvent(Event):
    """The app will be disabled for inactivity at ``effect_time`` (长期未使用应用停用预警)."""

    effect_time: int | None = None


@register("app", "event/taskcard_click", doc="90240")
@dataclass(frozen=True, kw_only=True)
class TaskCardClickEvent(Event):
    """Legacy task card clicked (任务卡片事件)."""

    task_id: str | None = None


@dataclass(frozen=True, kw_only=True)
class _ExternalContactFields:
    """Fields of change_external_contact; which ones come depends on ``change_type``."""

    user_id: str | None = None
    external_user_id: str | None = None
    state: str | None = None
    welcome_code: str | None = None
    source: str | None = None
    fail_reason: str | None = None


@dataclass(frozen=True, kw_only=True)
class _ExternalChatFields:
    """Fields of change_external_chat."""

    chat_id: str | None = None
    update_detail: str | None = None
    join_scene: int | None = None
    quit_scene: int | None = None
    mem_change_cnt: int | None = None


@dataclass(frozen=True, kw_only=True)
class _ExternalTagFields:
    """Fields of change_external_tag; ``id`` is a string (WeCom's tag and group ids are)."""

    id: str | None = None
    tag_type: str | None = None
    strategy_id: int | None = None


@register("app", "event/change_external_contact", doc="92130")
@dataclass(frozen=True, kw_only=True)
class ExternalContactEvent(Event, _ExternalContactFields):
    """Customer contact changed (客户联系: 企业客户事件); fields depend on ``change_type``."""


@register("app", "event/change_external_chat", doc="92130")
@dataclass(frozen=True, kw_only=True)
class ExternalChatEvent(Event, _ExternalChatFields):
    """Customer group chat created, updated or dismissed (客户群事件)."""


@register("app", "event/change_external_tag", doc="92130")
@dataclass(frozen=True, kw_only=True)
class ExternalTagEvent(Event, _ExternalTagFields):
    """Customer tag created, updated, deleted or reordered (企业客户标签事件)."""


@register("app", "event/sys_approval_change", doc="91815")
@dataclass(frozen=True, kw_only=True)
class SysApprovalChangeEvent(Event):
    """Approval application status changed (审批申请状态变化)."""

    approval_info: SysApprovalInfo | None = None


@register("app", "event/kf_msg_or_event", doc="94670")
@dataclass(frozen=True, kw_only=True)
class KfMsgOrEvent(Event):
    """WeChat customer service (微信客服) has messages to pull with ``token``."""

    token: str | None = None
    open_kf_id: str | None = None


@register("app", "event/modify_calendar", "event/delete_calendar", doc="93704")
@dataclass(frozen=True, kw_only=True)
class CalendarEvent(Event):
    """Calendar modified or deleted (日历事件)."""

    cal_id: str | None = None


@register(
    "app",
    "event/add_schedule",
    "event/modify_schedule",
    "event/delete_schedule",
    doc="93704",
)
@dataclass(frozen=True, kw_only=True)
class ScheduleEvent(CalendarEvent):
    """Schedule added, modified or deleted (日程事件)."""

    schedule_id: str | None = None


@register("app", "event/book_meeting_room", "event/cancel_meeting_room", doc="93620")
@dataclass(frozen=True, kw_only=True)
class MeetingRoomEvent(Event):
    """Meeting room booked or cancelled (会议室预定事件)."""

    meeting_room_id: str | None = None
    meeting_id: str | None = None


# --------------------------------------------------------------------------- suite callbacks


@register("suite", "change_contact", doc="90639")
@register("suite", "share_agent_change", "change_app_admin", doc="90642")
@dataclass(frozen=True, kw_only=True)
class SuiteCallback(Message):
    """A third-party suite command callback (指令回调), keyed by ``InfoType``.

    Used directly for share_agent_change, change_app_admin and a change_contact whose
    ChangeType is not known yet.
    """

    suite_id: str | None = None
    auth_corp_id: str | None = None
    time_stamp: int | None = None
    #: The provider's CorpID, in callbacks sent to the provider rather than to one suite.
    service_corp_id: str | None = None


@register("suite", "suite_ticket", doc="90628")
@dataclass(frozen=True, kw_only=True)
class SuiteTicket(SuiteCallback):
    """suite_ticket push (推送suite_ticket), every 10 minutes."""

    suite_ticket: str | None = None


@register("suite", "create_auth", "change_auth", "cancel_auth", "reset_permanent_code", doc="90642")
@dataclass(frozen=True, kw_only=True)
class SuiteAuthChange(SuiteCallback):
    """Authorisation created, changed or cancelled, or permanent code reset (授权通知)."""

    auth_code: str | None = None
    state: str | None = None


@register(
    "suite",
    "change_contact/create_user",
    "change_contact/update_user",
    "change_contact/delete_user",
    doc="90639",
)
@dataclass(frozen=True, kw_only=True)
class SuiteContactUserChange(SuiteCallback, _ContactUserFields):
    """Suite contact change for a member (成员变更通知)."""


@register(
    "suite",
    "change_contact/create_party",
    "change_contact/update_party",
    "change_contact/delete_party",
    doc="90639",
)
@dataclass(frozen=True, kw_only=True)
class SuiteContactPartyChange(SuiteCallback, _ContactPartyFields):
    """Suite contact change for a department (部门变更通知)."""


@register("suite", "change_contact/update_tag", doc="90639")
@dataclass(frozen=True, kw_only=True)
class SuiteContactTagChange(SuiteCallback, _ContactTagFields):
    """Suite contact change for a tag (标签成员变更通知)."""


@register("suite", "change_external_contact", doc="92277")
@dataclass(frozen=True, kw_only=True)
class SuiteExternalContactChange(SuiteCallback, _ExternalContactFields):
    """Suite customer contact change (企业客户事件); fields depend on ``change_type``."""


@register("suite", "change_external_chat", doc="92277")
@dataclass(frozen=True, kw_only=True)
class SuiteExternalChatChange(SuiteCallback, _ExternalChatFields):
    """Suite customer group chat change (客户群事件)."""


@register("suite", "change_external_tag", doc="92277")
@dataclass(frozen=True, kw_only=True)
class SuiteExternalTagChange(SuiteCallback, _ExternalTagFields):
    """Suite customer tag change (企业客户标签事件)."""


@register("suite", "customer_acquisition", doc="97402")
@dataclass(frozen=True, kw_only=True)
class SuiteCustomerAcquisition(SuiteCallback, _CustomerAcquisitionFields):
    """Suite customer acquisition (获客助手) event; fields depend on ``change_type``."""


@register("suite", "change_school_contact", doc="92051")
@dataclass(frozen=True, kw_only=True)
class SuiteSchoolContactChange(SuiteCallback, _SchoolContactFields):
    """Suite school contact change (家校通讯录变更)."""


@dataclass(frozen=True, kw_only=True)
class SchoolContactChange(Node):
    """One ``ChangeList`` entry of change_school_contact_batch."""

    time_stamp: int | None = None
    change_type: str | None = None
    id: str | None = None
    new_id: str | None = None


@register("suite", "change_school_contact_batch", doc="97281")
@dataclass(frozen=True, kw_only=True)
class SuiteSchoolContactBatch(SuiteCallback):
    """Several school contact changes at once (家校通讯录批量变更事件), one per ``ChangeList``."""

    change_list: tuple[SchoolContactChange, ...] = ()


@register("suite", "conversation_new_message", doc="99682")
@dataclass(frozen=True, kw_only=True)
class SuiteConversationNewMessage(SuiteCallback):
    """New archived messages (会话内容存档: 产生会话回调事件); ``token`` is valid 10 minutes."""

    token: str | None = None


@dataclass(frozen=True, kw_only=True)
class ContactSync(Node):
    """``ContactSync`` of register_corp: a contacts access token (通讯录迁移凭证)."""

    access_token: str | None = None
    expires_in: int | None = None


@register("suite", "register_corp", doc="90585")
@dataclass(frozen=True, kw_only=True)
class SuiteRegisterCorp(SuiteCallback):
    """A company registered through a promotion QR code (注册完成回调事件).

    Sent to the provider's URL: ``service_corp_id`` is the provider, ``auth_corp_id`` the new
    company; there is no SuiteId.
    """

    register_code: str | None = None
    contact_sync: ContactSync | None = None
    auth_user_info: UserRef | None = None
    state: str | None = None
    template_id: str | None = None


@register("suite", "open_order", doc="99387")
@register("suite", "change_order", doc="91930")
@register("suite", "pay_for_app_success", doc="99389")
@register("suite", "refund", doc="91932")
@register("suite", "cancel_order", doc="99353")
@dataclass(frozen=True, kw_only=True)
class SuiteOrderChange(SuiteCallback):
    """An app order placed, repriced, paid, refunded or cancelled (收银台: 应用版本回调通知).

    ``change_order`` carries ``old_order_id`` and ``new_order_id``, the others ``order_id``.
    """

    paid_corp_id: str | None = None
    order_id: str | None = None
    operator_id: str | None = None
    old_order_id: str | None = None
    new_order_id: str | None = None


@register("suite", "license_refund", doc="95805")
@register("suite", "advanced_api_pay_success", doc="101401")
@register("suite", "advanced_api_refund", doc="101402")
@dataclass(frozen=True, kw_only=True)
class SuiteLicenseOrder(SuiteCallback):
    """An order for interface licences or advanced APIs paid or refunded (订单回调).

    Sent to the provider's system event URL; ``order_status`` 1 refunded, 2 refund refused.
    """

    order_id: str | None = None
    order_status: int | None = None
    buyer_user_id: str | None = None
    advance_api_type: int | None = None


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


@register("aibot", "text", doc="100719")
@dataclass(frozen=True, kw_only=True)
class BotTextMessage(BotMessage):
    """AI-bot text; in groups the content includes the @mention."""

    text: BotText | None = None


@register("aibot", "image", doc="100719")
@dataclass(frozen=True, kw_only=True)
class BotImageMessage(BotMessage):
    """AI-bot image (single chat only)."""

    image: BotMedia | None = None


@register("aibot", "mixed", doc="100719")
@dataclass(frozen=True, kw_only=True)
class BotMixedMessage(BotMessage):
    """AI-bot mixed text and images."""

    mixed: BotMixed | None = None


@register("aibot", "voice", doc="100719")
@dataclass(frozen=True, kw_only=True)
class BotVoiceMessage(BotMessage):
    """AI-bot voice, already converted to text (single chat only)."""

    voice: BotText | None = None


@register("aibot", "file", doc="100719")
@dataclass(frozen=True, kw_only=True)
class BotFileMessage(BotMessage):
    """AI-bot file (single chat only, up to 100 MB)."""

    file: BotMedia | None = None


@register("aibot", "video", doc="100719")
@dataclass(frozen=True, kw_only=True)
class BotVideoMessage(BotMessage):
    """AI-bot video."""

    video: BotMedia | None = None


@register("aibot", "stream", doc="100719")
@dataclass(frozen=True, kw_only=True)
class BotStreamRefresh(BotMessage):
    """Stream refresh poll: answer with the latest cumulative content for ``stream.id``."""

    stream: BotStreamRef | None = None


@register("aibot", "event/enter_chat", doc="101027")
@dataclass(frozen=True, kw_only=True)
class BotEvent(BotMessage):
    """AI-bot enter_chat (进入会话): first entry of the day; answer with a welcome or a card."""


@register("aibot", "event/template_card_event", doc="101027")
@dataclass(frozen=True, kw_only=True)
class BotTemplateCardEvent(BotEvent):
    """AI-bot template card clicked; delivered once, answer within 5 seconds."""

    template_card_event: BotCardEvent | None = None


@register("aibot", "event/disconnected_event", doc="101463")
@dataclass(frozen=True, kw_only=True)
class BotDisconnectedEvent(BotEvent):
    """Long connection only (长连接): another connection subscribed for this bot and displaced
    this one. Sent without a sender; do not reconnect."""


@register("aibot", "event/feedback_event", doc="101027")
@dataclass(frozen=True, kw_only=True)
class BotFeedbackEvent(BotEvent):
    """User feedback on a stream reply; accepts only an empty reply."""

    feedback_event: BotFeedback | None = None
