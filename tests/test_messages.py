"""Tests for flask_wecom.messages: the corpus, the naming contract and hostile documents."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import re
import sys
import time
import tracemalloc
import typing
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flask_wecom import messages as m
from flask_wecom import model
from flask_wecom.errors import ParseError, PayloadTooLarge
from flask_wecom.messages import Message, parse_message, registered_paths, snake_case
from flask_wecom.router import Router

CORPUS = Path(__file__).parent / "corpus"

APP = {"to_user_name": "ww1436e0e65a779aee", "is_aibot": False}
EVENT = {**APP, "msg_id": None, "create_time": 1408091189}
SYS_EVENT = {**EVENT, "from_user_name": "sys", "agent_id": None}
USER_EVENT = {**EVENT, "from_user_name": "ZhangSan", "agent_id": 1}
SUITE = {"suite_id": "ww4asffe99e54c0fxxxx", "time_stamp": 1403610513, "create_time": None}
BOT = {"is_aibot": True, "aibotid": "AIBOTID", "from_user_name": "USERID", "agent_id": None}
BOT_MESSAGE = {**BOT, "msg_id": "CAIQrcjMjQYY/NGagIOAgAMgl8jK/gI="}
RESPONSE_URL = "https://qyapi.weixin.qq.com/cgi-bin/aibot/response?response_code=RESPONSECODE"
CALENDAR = {**SYS_EVENT, "cal_id": "wcjgewCwAAqeJcPI1d8Pwbjt7nttzAAA"}
SCHEDULE = {**CALENDAR, "schedule_id": "17c7d2bd9f20d652840f72f59e796AAA"}
MEETING = {**SYS_EVENT, "meeting_room_id": "1", "meeting_id": "wmsMTlEAAAr7nG3vzqGr6IsEW1rMhAAA"}
SUITE_CONTACT = {**SUITE, "auth_corp_id": "wxf8b4f85f3a794e77", "info_type": "change_contact"}
ORDER = {**SUITE, "paid_corp_id": "wxf8b4f85f3a794e77", "auth_corp_id": None}
PROVIDER = {
    "service_corp_id": "wwddddccc7775555aab",
    "auth_corp_id": "wxf8b4f85f3a794e77",
    "suite_id": None,
    "time_stamp": 1403610513,
}


def row(
    path: str, model: type[Message], type_: str, event: str, *common: dict[str, Any], **fields: Any
) -> Any:
    """One corpus sample: its model, ``.type``, ``.event`` and fields (dotted attribute paths).

    ``common`` holds shared expectations, which ``fields`` may override.
    """
    expected = {name: value for shared in common for name, value in shared.items()}
    return pytest.param(path, model, type_, event, expected | fields, id=path.rsplit(".", 1)[0])


ROWS = [
    # Messages (doc 90239)
    row(
        "app/text.xml",
        m.TextMessage,
        "text",
        "",
        APP,
        msg_id="4561255354251345929",
        from_user_name="ZhangSan",
        create_time=1348831860,
        agent_id=1000002,
        content="this is a test",
    ),
    row(
        "app/image.xml",
        m.ImageMessage,
        "image",
        "",
        APP,
        msg_id="1234567890123456",
        pic_url="https://wework.qpic.cn/wwpic/123/0",
        media_id="1ViL7Jm2g3bzAWhs9XBOrPEE0j2BSlGBYRUo-I_4EY8E",
    ),
    row(
        "app/voice.xml",
        m.VoiceMessage,
        "voice",
        "",
        APP,
        msg_id="9223372036854775807",
        media_id="media_id_voice",
        format="amr",
        create_time=1357290913,
    ),
    row(
        "app/video.xml",
        m.VideoMessage,
        "video",
        "",
        APP,
        media_id="media_id_video",
        thumb_media_id="thumb_media_id",
        msg_id="1234567890123456",
    ),
    row(
        "app/location.xml",
        m.LocationMessage,
        "location",
        "",
        APP,
        location_x=23.134521,
        location_y=113.358803,
        scale=20,
        label="位置信息",
        app_type="wxwork",
        agent_id=1,
        msg_id="1234567890123456",
    ),
    row(
        "app/link.xml",
        m.LinkMessage,
        "link",
        "",
        APP,
        title="this is a title",
        description="this is a description",
        url="https://work.weixin.qq.com/",
        pic_url="https://work.weixin.qq.com/pic.png",
        msg_id="1234567890123456",
    ),
    row(
        "app/json_text.json",
        m.TextMessage,
        "text",
        "",
        msg_id="4561255354251345929",
        agent_id=218,
        content="hello",
        to_user_name="wx5823bf96d3bd56c7",
        from_user_name="mycreate",
        create_time=1409659813,
        is_aibot=False,
    ),
    row(
        "app/unknown_file.xml",
        m.UnknownMessage,
        "file",
        "",
        APP,
        msg_id="7300000000000000001",
        content=None,
        media_id="media_id_file",
        **{"file_info.name": "report.pdf", "file_info.size": "2048"},
    ),
    # Events (doc 90240 and others)
    row(
        "app/event_subscribe.xml",
        m.SubscribeEvent,
        "event",
        "subscribe",
        USER_EVENT,
        event_key=None,
    ),
    row("app/event_unsubscribe.xml", m.UnsubscribeEvent, "event", "unsubscribe", USER_EVENT),
    row(
        "app/event_enter_agent.xml",
        m.EnterAgentEvent,
        "event",
        "enter_agent",
        USER_EVENT,
        event_key="",
    ),
    row(
        "app/event_location.xml",
        m.LocationEvent,
        "event",
        "location",
        USER_EVENT,
        latitude=23.104105,
        longitude=113.320107,
        precision=65.0,
        app_type="wxwork",
    ),
    row(
        "app/event_batch_job_result.xml",
        m.BatchJobResultEvent,
        "event",
        "batch_job_result",
        SYS_EVENT,
        **{
            "batch_job.job_id": "S0MrnndvRG5fadSlLwiBqiDDbM143UqTmKP3152FZk4",
            "batch_job.job_type": "sync_user",
            "batch_job.err_code": 0,
            "batch_job.err_msg": "ok",
        },
    ),
    row(
        "app/event_change_contact_create_user.xml",
        m.ContactUserEvent,
        "event",
        "change_contact",
        SYS_EVENT,
        change_type="create_user",
        user_id="zhangsan",
        name="张三",
        department="1,2,3",
        main_department=1,
        is_leader_in_dept="1,0,0",
        direct_leader="lisi,wangwu",
        position="产品经理",
        mobile="13800000000",
        gender=1,
        email="zhangsan@gzdev.com",
        biz_mail="zhangsan@qyycs2.wecom.work",
        status=1,
        alias="zhangsan",
        telephone="020-123456",
        address="广州市",
        **{
            "ext_attr.item.0.name": "爱好",
            "ext_attr.item.0.type": 0,
            "ext_attr.item.0.text.value": "旅游",
            "ext_attr.item.1.type": 1,
            "ext_attr.item.1.web.url": "https://work.weixin.qq.com",
        },
    ),
    row(
        "app/event_change_contact_update_user.xml",
        m.ContactUserEvent,
        "event",
        "change_contact",
        SYS_EVENT,
        change_type="update_user",
        user_id="zhangsan",
        new_user_id="zhangsan001",
        department="1,2",
        name=None,
        **{"ext_attr.item.0.text.value": "阅读"},
    ),
    row(
        "app/event_change_contact_delete_user.xml",
        m.ContactUserEvent,
        "event",
        "change_contact",
        SYS_EVENT,
        change_type="delete_user",
        user_id="zhangsan",
        ext_attr=None,
    ),
    row(
        "app/event_change_contact_create_party.xml",
        m.ContactPartyEvent,
        "event",
        "change_contact",
        SYS_EVENT,
        change_type="create_party",
        id=2,
        name="张三",
        parent_id=1,
        order=1,
    ),
    row(
        "app/event_change_contact_update_party.xml",
        m.ContactPartyEvent,
        "event",
        "change_contact",
        SYS_EVENT,
        change_type="update_party",
        id=2,
        parent_id=1,
        order=None,
    ),
    row(
        "app/event_change_contact_delete_party.xml",
        m.ContactPartyEvent,
        "event",
        "change_contact",
        SYS_EVENT,
        change_type="delete_party",
        id=2,
    ),
    row(
        "app/event_change_contact_update_tag.xml",
        m.ContactTagEvent,
        "event",
        "change_contact",
        SYS_EVENT,
        change_type="update_tag",
        tag_id=1,
        add_user_items="zhangsan,lisi",
        del_user_items="zhangsan1,lisi1",
        add_party_items="1,2",
        del_party_items="3,4",
    ),
    row(
        "app/event_change_contact_unknown.xml",
        m.Event,
        "event",
        "change_contact",
        SYS_EVENT,
        change_type="merge_party",
        id="7",
    ),
    row("app/event_click.xml", m.ClickEvent, "event", "click", USER_EVENT, event_key="EVENTKEY"),
    row(
        "app/event_view.xml",
        m.ViewEvent,
        "event",
        "view",
        USER_EVENT,
        event_key="https://work.weixin.qq.com/",
    ),
    row(
        "app/event_view_miniprogram.xml",
        m.ViewMiniprogramEvent,
        "event",
        "view_miniprogram",
        USER_EVENT,
        event_key="pages/index/index",
    ),
    row(
        "app/event_scancode_push.xml",
        m.ScanCodeEvent,
        "event",
        "scancode_push",
        USER_EVENT,
        event_key="rselfmenu_0_1",
        **{"scan_code_info.scan_type": "qrcode", "scan_code_info.scan_result": "1"},
    ),
    row(
        "app/event_scancode_waitmsg.xml",
        m.ScanCodeEvent,
        "event",
        "scancode_waitmsg",
        USER_EVENT,
        event_key="rselfmenu_0_0",
        **{"scan_code_info.scan_result": "2"},
    ),
    row(
        "app/event_pic_sysphoto.xml",
        m.SendPicsEvent,
        "event",
        "pic_sysphoto",
        USER_EVENT,
        event_key="rselfmenu_1_0",
        **{
            "send_pics_info.count": 1,
            "send_pics_info.pic_list.item.0.pic_md5_sum": "1b5f7c23b5bf75682a53e7b6d163e185",
        },
    ),
    row(
        "app/event_pic_photo_or_album.xml",
        m.SendPicsEvent,
        "event",
        "pic_photo_or_album",
        USER_EVENT,
        **{
            "send_pics_info.count": 2,
            "send_pics_info.pic_list.item.1.pic_md5_sum": "7b5f7c23b5bf75682a53e7b6d163e185",
        },
    ),
    row(
        "app/event_pic_weixin.xml",
        m.SendPicsEvent,
        "event",
        "pic_weixin",
        USER_EVENT,
        event_key="rselfmenu_1_2",
        **{"send_pics_info.pic_list.item.0.pic_md5_sum": "5a75aaca956d97be686719218f275c6b"},
    ),
    row(
        "app/event_location_select.xml",
        m.LocationSelectEvent,
        "event",
        "location_select",
        USER_EVENT,
        event_key="rselfmenu_2_0",
        app_type="wxwork",
        **{
            "send_location_info.location_x": 23.0,
            "send_location_info.location_y": 113.0,
            "send_location_info.scale": 15,
            "send_location_info.label": " 广州市海珠区客村艺苑路 106号",
            "send_location_info.poiname": "",
        },
    ),
    row(
        "app/event_open_approval_change.xml",
        m.OpenApprovalChangeEvent,
        "event",
        "open_approval_change",
        SYS_EVENT | {"agent_id": 1},
        **{
            "approval_info.third_no": "201806010001",
            "approval_info.open_sp_status": 1,
            "approval_info.apply_time": 1527837645,
            "approval_info.approverstep": 0,
            "approval_info.approval_nodes.approval_node.0.node_type": 1,
            "approval_info.approval_nodes.approval_node.0.items.item.0.item_name": "xiaohong",
            "approval_info.approval_nodes.approval_node.0.items.item.0.item_op_time": 0,
            "approval_info.notify_nodes.notify_node.0.item_user_id": "2",
        },
    ),
    row(
        "app/event_share_agent_change.xml",
        m.Event,
        "event",
        "share_agent_change",
        SYS_EVENT | {"agent_id": 1},
    ),
    row(
        "app/event_share_chain_change.xml",
        m.Event,
        "event",
        "share_chain_change",
        SYS_EVENT | {"agent_id": 1},
    ),
    row(
        "app/event_template_card_event.xml",
        m.TemplateCardEvent,
        "event",
        "template_card_event",
        USER_EVENT,
        event_key="key111",
        task_id="taskid111",
        card_type="vote_interaction",
        response_code="ResponseCode",
        **{
            "selected_items.selected_item.0.question_key": "QuestionKey1",
            "selected_items.selected_item.0.option_ids.option_id": ("OptionId1", "OptionId2"),
            "selected_items.selected_item.1.option_ids.option_id": ("OptionId3",),
        },
    ),
    row(
        "app/event_template_card_menu_event.xml",
        m.TemplateCardEvent,
        "event",
        "template_card_menu_event",
        USER_EVENT,
        task_id="taskid111",
        card_type="text_notice",
        selected_items=None,
    ),
    row(
        "app/event_inactive_alert.xml",
        m.InactiveAlertEvent,
        "event",
        "inactive_alert",
        SYS_EVENT | {"agent_id": 1},
        effect_time=1700006400,
    ),
    row(
        "app/event_low_active_alert.xml",
        m.InactiveAlertEvent,
        "event",
        "low_active_alert",
        SYS_EVENT | {"agent_id": 1},
        effect_time=1700006400,
    ),
    row(
        "app/event_close_inactive_agent.xml",
        m.Event,
        "event",
        "close_inactive_agent",
        SYS_EVENT | {"agent_id": 1},
    ),
    row(
        "app/event_reopen_inactive_agent.xml",
        m.Event,
        "event",
        "reopen_inactive_agent",
        SYS_EVENT | {"agent_id": 1},
    ),
    row("app/event_low_active.xml", m.Event, "event", "low_active", SYS_EVENT | {"agent_id": 1}),
    row(
        "app/event_active_restored.xml",
        m.Event,
        "event",
        "active_restored",
        SYS_EVENT | {"agent_id": 1},
    ),
    row(
        "app/event_taskcard_click.xml",
        m.TaskCardClickEvent,
        "event",
        "taskcard_click",
        USER_EVENT,
        event_key="key111",
        task_id="taskid111",
    ),
    row(
        "app/event_change_external_contact.xml",
        m.ExternalContactEvent,
        "event",
        "change_external_contact",
        SYS_EVENT,
        change_type="add_external_contact",
        user_id="zhangsan",
        external_user_id="woAJ2GCAAAXtWyujaWJHDDGi0mACAAAA",
        state="teststate",
        welcome_code="WELCOMECODE",
        fail_reason=None,
    ),
    row(
        "app/event_change_external_contact_transfer_fail.xml",
        m.ExternalContactEvent,
        "event",
        "change_external_contact",
        SYS_EVENT,
        change_type="transfer_fail",
        fail_reason="customer_refused",
        state=None,
    ),
    row(
        "app/event_change_external_chat.xml",
        m.ExternalChatEvent,
        "event",
        "change_external_chat",
        SYS_EVENT,
        change_type="update",
        chat_id="wrOgQhDgAAMYQiS5ol9G7gK9JVAAAA",
        update_detail="add_member",
        join_scene=1,
        quit_scene=0,
        mem_change_cnt=10,
        **{
            "mem_change_list.item": ("Jack", "Rose"),
            "cur_mem_ver": "71217227bbd112ecfe3a49c482195cb4",
        },
    ),
    row(
        "app/event_change_external_tag.xml",
        m.ExternalTagEvent,
        "event",
        "change_external_tag",
        SYS_EVENT,
        change_type="create",
        id="etm7wjCgAA2s2Wij9bkrg8tgSzOWt3qQ",
        tag_type="tag",
        strategy_id=1,
    ),
    row(
        "app/event_sys_approval_change.xml",
        m.SysApprovalChangeEvent,
        "event",
        "sys_approval_change",
        SYS_EVENT | {"agent_id": 3010040},
        **{
            "approval_info.sp_no": "202006280001",
            "approval_info.sp_status": 1,
            "approval_info.apply_time": 1593333236,
            "approval_info.applyer.user_id": "WangXiaoMing",
            "approval_info.applyer.party": "1",
            "approval_info.sp_record.0.approver_attr": 1,
            "approval_info.sp_record.0.details.0.approver.user_id": "LiuXiaoHong",
            "approval_info.notifyer.1.user_id": "LiXiaoLan",
            "approval_info.comments.comment_content": "加油",
            "approval_info.statu_change_event": 1,
        },
    ),
    row(
        "app/event_kf_msg_or_event.xml",
        m.KfMsgOrEvent,
        "event",
        "kf_msg_or_event",
        SYS_EVENT,
        token="ENCApHxnGDNAVNY4AaSJKj4Tb5mwsEMzxhFmHVGcra996NR",
        open_kf_id="wkxxxxxxx",
    ),
    row("app/event_modify_calendar.xml", m.CalendarEvent, "event", "modify_calendar", CALENDAR),
    row("app/event_delete_calendar.xml", m.CalendarEvent, "event", "delete_calendar", CALENDAR),
    row("app/event_add_schedule.xml", m.ScheduleEvent, "event", "add_schedule", SCHEDULE),
    row("app/event_modify_schedule.xml", m.ScheduleEvent, "event", "modify_schedule", SCHEDULE),
    row("app/event_delete_schedule.xml", m.ScheduleEvent, "event", "delete_schedule", SCHEDULE),
    row(
        "app/event_book_meeting_room.xml", m.MeetingRoomEvent, "event", "book_meeting_room", MEETING
    ),
    row(
        "app/event_cancel_meeting_room.xml",
        m.MeetingRoomEvent,
        "event",
        "cancel_meeting_room",
        MEETING,
    ),
    row(
        "app/event_change_app_admin.xml",
        m.Event,
        "event",
        "change_app_admin",
        SYS_EVENT | {"agent_id": 1},
    ),
    row(
        "app/event_unknown.xml",
        m.UnknownEvent,
        "event",
        "unknown_future_event",
        USER_EVENT,
        **{"detail.level": "3", "detail.tags.tag": ("a", "b")},
    ),
    # Third-party suite command callbacks (指令回调), keyed by InfoType
    # Events added for issue 15 (official samples; see docs/events.md)
    row(
        "app/event_customer_acquisition.xml",
        m.CustomerAcquisitionEvent,
        "event",
        "customer_acquisition",
        SYS_EVENT,
        change_type="customer_start_chat",
        user_id="zhangsan",
        external_user_id="woAJ2GCAAAXtWyujaWJHDDGi0mACH71w",
        link_id="cawcdea7783d7330c6",
        state="STATE",
        create_time=1403610513,
    ),
    row(
        "app/event_customer_acquisition_balance_low.xml",
        m.CustomerAcquisitionEvent,
        "event",
        "customer_acquisition",
        SYS_EVENT,
        change_type="balance_low",
        link_id=None,
        create_time=1403610513,
    ),
    row(
        "app/event_kf_account_auth_change.xml",
        m.KfAccountAuthChangeEvent,
        "event",
        "kf_account_auth_change",
        SYS_EVENT,
        auth_add_open_kf_id=(
            "wkAJ2GCAAAZSfhHCt7IFSvLKtMPxyAAA",
            "wkAJ2GCAAAZSfhHCt7IFSvLKtMPxyBBB",
        ),
        auth_del_open_kf_id=("wkAJ2GCAAAZSfhHCt7IFSvLKtMPxyCCC",),
        create_time=1348831860,
    ),
    row(
        "app/event_living_status_change.xml",
        m.LivingStatusChangeEvent,
        "event",
        "living_status_change",
        EVENT,
        from_user_name="zhangsan",
        agent_id=1000002,
        living_id="lvOQpTDwAAD2MYuOq9y_bmLNMJfbbdGw",
        status=1,
        create_time=1348831860,
    ),
    row(
        "app/event_msgaudit_notify.xml",
        m.MsgAuditNotifyEvent,
        "event",
        "msgaudit_notify",
        SYS_EVENT,
        agent_id=2000004,
        create_time=1629101687,
    ),
    row(
        "app/event_change_school_contact.xml",
        m.SchoolContactEvent,
        "event",
        "change_school_contact",
        SYS_EVENT,
        change_type="update_student",
        id="xiaoming",
        new_id="xiaoming2",
        create_time=1403610513,
    ),
    row(
        "app/event_upload_media_job_finish.xml",
        m.UploadMediaJobFinishEvent,
        "event",
        "upload_media_job_finish",
        SYS_EVENT,
        job_id="jobid_S0MrnndvRG5fadSlLwiBqiDDbM143UqTmKP3152FZk4",
        create_time=1403610513,
    ),
    row(
        "suite/register_corp.xml",
        m.SuiteRegisterCorp,
        "register_corp",
        "",
        service_corp_id="wwddddccc7775555aab",
        suite_id=None,
        auth_corp_id="wwddddccc7775555aaa",
        time_stamp=1502682173,
        register_code="pIKi3wRPNWCGF-pyP-YU5KWjDDD",
        state="state1",
        template_id="tpl1test",
        **{
            "contact_sync.access_token": "accesstoken000001",
            "contact_sync.expires_in": 1800,
            "auth_user_info.user_id": "zhangshan",
        },
    ),
    row(
        "suite/change_external_contact.xml",
        m.SuiteExternalContactChange,
        "change_external_contact",
        "",
        SUITE_CONTACT,
        info_type="change_external_contact",
        change_type="add_external_contact",
        user_id="zhangsan",
        external_user_id="woAJ2GCAAAXtWyujaWJHDDGi0mACH71w",
        state="teststate",
        welcome_code="WELCOMECODE",
    ),
    row(
        "suite/change_external_chat.xml",
        m.SuiteExternalChatChange,
        "change_external_chat",
        "",
        SUITE_CONTACT,
        info_type="change_external_chat",
        change_type="update",
        chat_id="wrx7HUARsKZZjm0l9Gbiw3QpwPJ7fN5w",
        update_detail="add_member",
        join_scene=1,
        mem_change_cnt=10,
    ),
    row(
        "suite/change_external_tag.xml",
        m.SuiteExternalTagChange,
        "change_external_tag",
        "",
        SUITE_CONTACT,
        info_type="change_external_tag",
        change_type="create",
        id="etm7wjCgAA2Lc7kY8aJ36mxUW0zRwhGg",
        tag_type="tag",
    ),
    row(
        "suite/customer_acquisition.xml",
        m.SuiteCustomerAcquisition,
        "customer_acquisition",
        "",
        SUITE_CONTACT,
        info_type="customer_acquisition",
        change_type="open_profile",
        link_id="cawcdea7783d7330c6",
        state="STATE",
    ),
    row(
        "suite/change_school_contact.xml",
        m.SuiteSchoolContactChange,
        "change_school_contact",
        "",
        SUITE_CONTACT,
        info_type="change_school_contact",
        change_type="create_student",
        id="zhangsan",
        new_id=None,
    ),
    row(
        "suite/change_school_contact_batch.xml",
        m.SuiteSchoolContactBatch,
        "change_school_contact_batch",
        "",
        SUITE_CONTACT,
        info_type="change_school_contact_batch",
        **{
            "change_list.0.change_type": "create_student",
            "change_list.0.id": "zhangsan",
            "change_list.0.time_stamp": 1403610513,
            "change_list.1.change_type": "update_parent",
            "change_list.1.new_id": "lisi2",
        },
    ),
    row(
        "suite/conversation_new_message.xml",
        m.SuiteConversationNewMessage,
        "conversation_new_message",
        "",
        SUITE_CONTACT,
        info_type="conversation_new_message",
        token="ENCApHxnGDNAVNY4AaSJKj4Tb5mwsEMzxhFmHVGcra996NR",
    ),
    row(
        "suite/open_order.xml",
        m.SuiteOrderChange,
        "open_order",
        "",
        ORDER,
        order_id="T00000000001",
        operator_id="zhangsan",
    ),
    row(
        "suite/change_order.xml",
        m.SuiteOrderChange,
        "change_order",
        "",
        ORDER,
        old_order_id="T00000000001",
        new_order_id="T00000000002",
        order_id=None,
    ),
    row(
        "suite/pay_for_app_success.xml",
        m.SuiteOrderChange,
        "pay_for_app_success",
        "",
        ORDER,
        order_id="T00000000002",
    ),
    row("suite/refund.xml", m.SuiteOrderChange, "refund", "", ORDER, order_id="T00000000002"),
    row(
        "suite/cancel_order.xml",
        m.SuiteOrderChange,
        "cancel_order",
        "",
        ORDER,
        order_id="T00000000003",
    ),
    row(
        "suite/license_refund.xml",
        m.SuiteLicenseOrder,
        "license_refund",
        "",
        PROVIDER,
        order_id="OI00000000001",
        order_status=1,
    ),
    row(
        "suite/advanced_api_pay_success.xml",
        m.SuiteLicenseOrder,
        "advanced_api_pay_success",
        "",
        PROVIDER,
        order_id="OA00000000001",
        buyer_user_id="lisi",
        advance_api_type=1,
        order_status=None,
    ),
    row(
        "suite/advanced_api_refund.xml",
        m.SuiteLicenseOrder,
        "advanced_api_refund",
        "",
        PROVIDER,
        order_id="OA00000000001",
        order_status=2,
        advance_api_type=1,
    ),
    row(
        "suite/suite_ticket.xml",
        m.SuiteTicket,
        "suite_ticket",
        "",
        SUITE,
        info_type="suite_ticket",
        suite_ticket="asdfasfdasdfasdf",
    ),
    row(
        "suite/create_auth.xml",
        m.SuiteAuthChange,
        "create_auth",
        "",
        SUITE,
        info_type="create_auth",
        auth_code="AUTHCODE",
        state="123",
        auth_corp_id=None,
    ),
    row(
        "suite/change_auth.xml",
        m.SuiteAuthChange,
        "change_auth",
        "",
        SUITE,
        auth_corp_id="wxf8b4f85f3a794e77",
        state="abc",
    ),
    row(
        "suite/cancel_auth.xml",
        m.SuiteAuthChange,
        "cancel_auth",
        "",
        SUITE,
        auth_corp_id="wxf8b4f85f3a794e77",
        auth_code=None,
    ),
    row(
        "suite/reset_permanent_code.xml",
        m.SuiteAuthChange,
        "reset_permanent_code",
        "",
        SUITE,
        auth_code="AUTHCODE",
    ),
    row(
        "suite/change_contact_create_user.xml",
        m.SuiteContactUserChange,
        "change_contact",
        "",
        SUITE_CONTACT,
        change_type="create_user",
        user_id="zhangsan",
        main_department=1,
        gender=1,
        open_user_id="woAAAA",
        **{"ext_attr.item.0.text.value": "旅游"},
    ),
    row(
        "suite/change_contact_update_user.xml",
        m.SuiteContactUserChange,
        "change_contact",
        "",
        SUITE_CONTACT,
        change_type="update_user",
        user_id="zhangsan",
        new_user_id="zhangsan001",
        department="1,2,3",
    ),
    row(
        "suite/change_contact_delete_user.xml",
        m.SuiteContactUserChange,
        "change_contact",
        "",
        SUITE_CONTACT,
        change_type="delete_user",
        user_id="zhangsan",
        name=None,
    ),
    row(
        "suite/change_contact_create_party.xml",
        m.SuiteContactPartyChange,
        "change_contact",
        "",
        SUITE_CONTACT,
        change_type="create_party",
        id=2,
        name="张三",
        parent_id=1,
        order=1,
    ),
    row(
        "suite/change_contact_delete_party.xml",
        m.SuiteContactPartyChange,
        "change_contact",
        "",
        SUITE_CONTACT,
        change_type="delete_party",
        id=2,
        parent_id=None,
    ),
    row(
        "suite/change_contact_update_party.xml",
        m.SuiteContactPartyChange,
        "change_contact",
        "",
        SUITE_CONTACT,
        change_type="update_party",
        id=2,
        parent_id=1,
    ),
    row(
        "suite/change_contact_update_tag.xml",
        m.SuiteContactTagChange,
        "change_contact",
        "",
        SUITE_CONTACT,
        change_type="update_tag",
        tag_id=1,
        del_party_items="3,4",
    ),
    row(
        "suite/change_contact_unknown.xml",
        m.SuiteCallback,
        "change_contact",
        "",
        SUITE_CONTACT,
        change_type="merge_party",
    ),
    row(
        "suite/share_agent_change.xml",
        m.SuiteCallback,
        "share_agent_change",
        "",
        SUITE,
        auth_corp_id="wxf8b4f85f3a794e77",
        agent_id=1000005,
    ),
    row(
        "suite/change_app_admin.xml",
        m.SuiteCallback,
        "change_app_admin",
        "",
        SUITE,
        info_type="change_app_admin",
        agent_id=1000005,
    ),
    row(
        "suite/unknown.xml",
        m.UnknownMessage,
        "corp_arch_auth",
        "",
        info_type="corp_arch_auth",
        auth_corp_id="wxf8b4f85f3a794e77",
        time_stamp="1403610513",
    ),
    # AI bot (智能机器人) JSON payloads
    row(
        "aibot/text.json",
        m.BotTextMessage,
        "text",
        "",
        BOT,
        msg_id="CAIQ16HMjQYY/NGagIOAgAMgq4KM0AI=",
        content="@RobotA hello robot",
        chatid="CHATID",
        chattype="group",
        response_url=RESPONSE_URL,
        **{
            "text.content": "@RobotA hello robot",
            "from_.userid": "USERID",
            "quote.msgtype": "text",
            "quote.text.content": "这是今日的测试情况",
        },
    ),
    row(
        "aibot/image.json",
        m.BotImageMessage,
        "image",
        "",
        BOT,
        chattype="single",
        content=None,
        chatid=None,
        **{
            "image.url": "https://ww-aibot-img-1258476243.cos."
            "ap-guangzhou.myqcloud.com/BHoPdA3/7571665296904772241"
            "?sign=xxx"
        },
    ),
    row(
        "aibot/mixed.json",
        m.BotMixedMessage,
        "mixed",
        "",
        BOT_MESSAGE,
        content=None,
        **{
            "mixed.msg_item.0.msgtype": "text",
            "mixed.msg_item.0.text.content": "@机器人 这是今日的测试情况",
            "mixed.msg_item.1.image.url": "https://example.invalid/IMAGEURL",
        },
    ),
    row(
        "aibot/voice.json",
        m.BotVoiceMessage,
        "voice",
        "",
        BOT_MESSAGE,
        content="这是语音转成的文本",
        **{"voice.content": "这是语音转成的文本"},
    ),
    row(
        "aibot/file.json",
        m.BotFileMessage,
        "file",
        "",
        BOT_MESSAGE,
        **{"file.url": "https://example.invalid/FILEURL"},
    ),
    row(
        "aibot/video.json",
        m.BotVideoMessage,
        "video",
        "",
        BOT_MESSAGE,
        **{"video.url": "https://example.invalid/VIDEOURL"},
    ),
    row(
        "aibot/stream.json",
        m.BotStreamRefresh,
        "stream",
        "",
        BOT,
        msg_id="CAIQz7/MjQYY/NGagIOAgAMgl8jK/gI=",
        response_url=None,
        **{"stream.id": "STREAMID"},
    ),
    row(
        "aibot/event_enter_chat.json",
        m.BotEvent,
        "event",
        "enter_chat",
        BOT_MESSAGE,
        create_time=1700000000,
        event_key=None,
        **{"from_.corpid": "wpxxxx"},
    ),
    row(
        "aibot/event_template_card_event.json",
        m.BotTemplateCardEvent,
        "event",
        "template_card_event",
        BOT_MESSAGE,
        create_time=1700000000,
        event_key="button_replace_text",
        response_url=RESPONSE_URL,
        **{
            "template_card_event.task_id": "TASKID",
            "template_card_event.card_type": "vote_interaction",
            "template_card_event.selected_items.selected_item.0.option_ids.option_id": (
                "one",
                "two",
            ),
        },
    ),
    row(
        "aibot/event_feedback_event.json",
        m.BotFeedbackEvent,
        "event",
        "feedback_event",
        BOT_MESSAGE,
        **{
            "feedback_event.id": "FEEDBACKID",
            "feedback_event.type": 2,
            "feedback_event.content": "答案不完整",
            "feedback_event.inaccurate_reason_list": (2, 4),
        },
    ),
    row(
        "aibot/event_unknown.json",
        m.UnknownEvent,
        "event",
        "future_event",
        BOT_MESSAGE,
        create_time=1700000000,
        **{"future_event.reason": "kicked"},
    ),
    row(
        "aibot/event_disconnected_event.json",
        m.BotDisconnectedEvent,
        "event",
        "disconnected_event",
        msg_id="MSGID_0004",
        aibotid="aibEXAMPLEBOTID",
        create_time=1712000100,
        from_user_name=None,
        is_aibot=True,
    ),
    row(
        "aibot/unknown.json",
        m.UnknownMessage,
        "sticker",
        "",
        BOT_MESSAGE,
        **{"sticker.url": "https://example.invalid/STICKER", "sticker.width": 240},
    ),
]


def resolve(obj: Any, dotted: str) -> Any:
    """Follow ``a.b.0.c`` through attributes and tuple indexes."""
    for step in dotted.split("."):
        obj = obj[int(step)] if step.isdigit() else getattr(obj, step)
    return obj


def oracle_raw(path: Path) -> dict[str, Any]:
    """The lossless raw form, built independently of flask_wecom (trusted local files only)."""
    if path.suffix == ".json":
        document: dict[str, Any] = json.loads(path.read_text("utf-8"))
        return document

    def value(element: ElementTree.Element) -> Any:
        if len(element) == 0:
            return element.text or ""
        children: dict[str, Any] = {}
        for child in element:
            children.setdefault(child.tag, []).append(value(child))
        return {tag: items[0] if len(items) == 1 else items for tag, items in children.items()}

    root = ElementTree.fromstring(path.read_bytes())  # noqa: S314 - the repository's own corpus
    result: dict[str, Any] = value(root)
    return result


def load(path: str) -> Message:
    return parse_message((CORPUS / path).read_bytes())


class TestCorpus:
    """One real-shaped sample per documented type, parsed into its model."""

    @pytest.mark.parametrize(("path", "model", "type_", "event", "expected"), ROWS)
    def test_sample(
        self, path: str, model: type[Message], type_: str, event: str, expected: dict[str, Any]
    ) -> None:
        """The sample parses to the expected model, labels, typed fields and raw dict."""
        message = load(path)
        assert type(message) is model
        assert (message.type, message.event) == (type_, event)
        assert message.is_event is (type_ == "event")
        assert message.raw == oracle_raw(CORPUS / path)
        actual = {name: resolve(message, name) for name in expected}
        assert actual == expected

    @pytest.mark.parametrize(("path", "model", "type_", "event", "expected"), ROWS)
    def test_typed_fields_match_elements(
        self, path: str, model: type[Message], type_: str, event: str, expected: dict[str, Any]
    ) -> None:
        """A typed field is set exactly when its element is in the sample (no misspelt fields)."""
        self._check_node(load(path), m.Message)

    def _check_node(self, node: m.Node, base: type[m.Node]) -> None:
        common = {f.name for f in dataclasses.fields(base)}
        lookup = dict(node.raw)
        if isinstance(node, Message) and node.is_aibot and isinstance(node.raw.get("event"), dict):
            lookup.update(node.raw["event"])
        present = {snake_case(key) for key in lookup}
        for f in dataclasses.fields(node):
            if f.name in common:
                continue
            value = getattr(node, f.name)
            assert (value not in (None, ())) == (f.name in present), f.name
            for child in value if isinstance(value, tuple) else (value,):
                if isinstance(child, m.Node):
                    self._check_node(child, m.Node)

    def test_every_registered_model_has_a_sample(self) -> None:
        """Each registry entry is exercised by at least one corpus row."""
        registry = registered_paths()
        used = set()
        for param in ROWS:
            message = load(param.values[0])
            parts = [p for p in (message.type, message.event, message.change_type) if p]
            while parts and (message.channel, "/".join(parts)) not in registry:
                parts.pop()
            used.add((message.channel, "/".join(parts)))
        assert set(registry) - used == set()

    def test_every_sample_is_in_the_table(self) -> None:
        """No corpus file is left out of the table."""
        files = {str(p.relative_to(CORPUS)) for p in CORPUS.rglob("*") if p.is_file()}
        assert files == {param.values[0] for param in ROWS}


class TestNamingContract:
    """Labels, snake_case names, numbers and the raw fallback."""

    @pytest.mark.parametrize(
        ("element", "attribute"),
        [
            pytest.param("FromUserName", "from_user_name", id="FromUserName"),
            pytest.param("CreateTime", "create_time", id="CreateTime"),
            pytest.param("AgentID", "agent_id", id="AgentID"),
            pytest.param("Location_X", "location_x", id="Location_X"),
            pytest.param("UserID", "user_id", id="UserID"),
            pytest.param("ExternalUserID", "external_user_id", id="ExternalUserID"),
            pytest.param("PicMd5Sum", "pic_md5_sum", id="PicMd5Sum"),
            pytest.param("approverstep", "approverstep", id="lower-case"),
            pytest.param("from", "from_", id="keyword"),
        ],
    )
    def test_snake_case(self, element: str, attribute: str) -> None:
        """Element names map mechanically to attribute names."""
        assert snake_case(element) == attribute

    def test_upper_case_location_event_is_lower_cased(self) -> None:
        """``Event=LOCATION`` arrives as ``location``; the raw value is untouched."""
        message = load("app/event_location.xml")
        assert message.event == "location"
        assert message.raw["Event"] == "LOCATION"

    def test_msg_id_is_text_exactly_as_sent(self) -> None:
        """MsgId is a str: exact above 2**53, in XML and JSON, and non-numeric ids too."""
        assert load("app/voice.xml").msg_id == "9223372036854775807"
        document = '{"MsgType": "text", "MsgId": 9007199254740993, "Content": "x"}'
        assert parse_message(document).msg_id == "9007199254740993"
        xml = "<xml><MsgType>text</MsgType><MsgId>CAIQg/PKxgYY2sC9tpuAgAMg9/zKaw==</MsgId></xml>"
        assert parse_message(xml).msg_id == "CAIQg/PKxgYY2sC9tpuAgAMg9/zKaw=="

    def test_unknown_fields_are_reachable(self) -> None:
        """Fields a newer WeCom adds are attributes too, nested and repeated."""
        message = parse_message(
            "<xml><MsgType>text</MsgType><Content>hi</Content><NewField>x</NewField>"
            "<Extra><Item><K>1</K></Item><Item><K>2</K></Item></Extra></xml>"
        )
        assert message.new_field == "x"
        assert [item.k for item in message.extra.item] == ["1", "2"]
        with pytest.raises(AttributeError, match="no field 'missing'"):
            _ = message.missing
        assert (message.get("new_field"), message.get("content"), message.get("missing")) == (
            "x",
            "hi",
            None,
        )

    def test_repeated_element_appearing_once_is_still_a_tuple(self) -> None:
        """A typed repeated field is a tuple whether the element appears once or more."""
        one = load("app/event_pic_sysphoto.xml")
        assert isinstance(one, m.SendPicsEvent)
        assert one.send_pics_info is not None and one.send_pics_info.pic_list is not None
        assert len(one.send_pics_info.pic_list.item) == 1

    def test_models_are_immutable(self) -> None:
        """Assigning to a model raises."""
        message = load("app/text.xml")
        with pytest.raises(dataclasses.FrozenInstanceError):
            message.content = "changed"  # type: ignore[misc]

    def test_equal_documents_give_equal_models(self) -> None:
        """Models compare by value and hash."""
        assert load("app/text.xml") == load("app/text.xml")
        assert hash(load("app/text.xml")) == hash(load("app/text.xml"))
        assert load("app/text.xml") != load("app/image.xml")

    def test_str_and_bytes_give_the_same_model(self) -> None:
        """Text input and UTF-8 bytes parse alike, with or without a BOM and leading space."""
        data = (CORPUS / "app/location.xml").read_bytes()
        assert parse_message(data.decode("utf-8")) == parse_message(data)
        assert parse_message(b"\xef\xbb\xbf" + data) == parse_message(data)
        assert parse_message(b"  \n" + data) == parse_message(data)

    def test_document_without_type_is_unknown(self) -> None:
        """A well-formed document without MsgType or InfoType still parses, losslessly."""
        message = parse_message("<xml><Foo>1</Foo></xml>")
        assert type(message) is m.UnknownMessage
        assert (message.type, message.event, message.raw) == ("", "", {"Foo": "1"})


def nested(depth: int) -> bytes:
    return b"<xml>" + b"<a>" * depth + b"</a>" * depth + b"</xml>"


BILLION_LAUGHS = (
    b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    + b"".join(
        b'<!ENTITY lol%d "%s">' % (i, (b"&lol%d;" % (i - 1) if i > 1 else b"&lol;") * 10)
        for i in range(1, 10)
    )
    + b"]><xml><MsgType>text</MsgType><Content>&lol9;</Content></xml>"
)
QUADRATIC = (
    b'<!DOCTYPE x [<!ENTITY a "'
    + b"A" * 50_000
    + b'">]><xml><Content>'
    + b"&a;" * 10_000
    + b"</Content></xml>"
)
HUNDRED_MB = 100 * 1024 * 1024


@pytest.mark.parametrize(
    ("make_document", "error", "match"),
    [
        pytest.param(
            lambda: b"<!DOCTYPE xml><xml><MsgType>text</MsgType></xml>",
            ParseError,
            "DOCTYPE",
            id="doctype",
        ),
        pytest.param(
            lambda: b'<!DOCTYPE x [<!ENTITY e "boom">]><xml><Content>&e;</Content></xml>',
            ParseError,
            "DOCTYPE",
            id="internal-entity",
        ),
        pytest.param(
            lambda: (
                b'<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
                b"<xml><Content>&e;</Content></xml>"
            ),
            ParseError,
            "DOCTYPE",
            id="external-entity",
        ),
        pytest.param(
            lambda: b'<!DOCTYPE x [<!ENTITY % p SYSTEM "http://127.0.0.1:9/x.dtd"> %p;]><xml/>',
            ParseError,
            "DOCTYPE",
            id="external-parameter-entity",
        ),
        pytest.param(lambda: BILLION_LAUGHS, ParseError, "DOCTYPE", id="billion-laughs"),
        pytest.param(lambda: QUADRATIC, ParseError, "DOCTYPE", id="quadratic-blowup"),
        pytest.param(
            lambda: b"<xml><Content>&undeclared;</Content></xml>",
            ParseError,
            "malformed",
            id="undeclared-entity",
        ),
        pytest.param(
            lambda: nested(HUNDRED_MB // 7), PayloadTooLarge, "exceeds", id="nesting-100MB"
        ),
        pytest.param(lambda: nested(100_000), ParseError, "malformed", id="nesting-under-cap"),
        pytest.param(
            lambda: "<xml>" + "<a>" * (HUNDRED_MB // 3),
            PayloadTooLarge,
            "exceeds",
            id="nesting-100MB-text",
        ),
        pytest.param(
            lambda: b"<xml><Content>\xff\xfe</Content></xml>",
            ParseError,
            "UTF-8",
            id="invalid-utf8",
        ),
        pytest.param(
            lambda: "<xml><Content>\ud800</Content></xml>",
            ParseError,
            "UTF-8",
            id="lone-surrogate",
        ),
        pytest.param(
            lambda: '<?xml version="1.0" encoding="UTF-16"?><xml/>'.encode("utf-16"),
            ParseError,
            "UTF-8",
            id="utf16-hidden-doctype",
        ),
        pytest.param(
            lambda: b"<xml><MsgType>text</MsgType>",
            ParseError,
            "malformed",
            id="truncated",
        ),
        pytest.param(
            lambda: b'{"msgtype": "text"' + b", " * 10,
            ParseError,
            "JSON",
            id="json-truncated",
        ),
        pytest.param(
            lambda: b'{"msgtype": ' + b"[" * 500_000 + b"]" * 500_000 + b"}",
            ParseError,
            "JSON",
            id="json-nesting",
        ),
        pytest.param(
            lambda: b'{"msgtype": "text", "n": ' + b"9" * 5000 + b"}",
            ParseError,
            "JSON",
            id="json-huge-integer",
        ),
        pytest.param(
            lambda: b'{"msgtype": "text", "n": NaN}',
            ParseError,
            "NaN",
            id="json-nan",
        ),
        pytest.param(lambda: b"[1, 2]", ParseError, "neither", id="json-array"),
        pytest.param(lambda: b"hello", ParseError, "neither", id="not-a-document"),
    ],
)
def test_hostile_documents_fail_fast_in_bounded_memory(
    make_document: Callable[[], bytes | str], error: type[Exception], match: str
) -> None:
    """Each hostile document raises the expected error within 1 s and 50 MB."""
    document = make_document()
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(error, match=match) as caught:
            parse_message(document)
        elapsed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert caught.value.code == -40002  # type: ignore[attr-defined]
    assert elapsed < 1.0
    assert peak < 50 * 1024 * 1024


def test_error_messages_do_not_echo_the_document() -> None:
    """A parse failure says what is wrong, never the (decrypted) content."""
    with pytest.raises(ParseError) as caught:
        parse_message("<xml><MsgType>text</MsgType><Content>secret-value</Content>")
    assert "secret-value" not in str(caught.value)


LENIENT = "<xml><MsgType>location</MsgType>{}</xml>"


@pytest.mark.parametrize(
    ("element", "attribute", "expected"),
    [
        pytest.param("<CreateTime>soon</CreateTime>", "create_time", "soon", id="int-junk"),
        pytest.param("<CreateTime> 17 </CreateTime>", "create_time", 17, id="int-padded"),
        pytest.param("<CreateTime>  </CreateTime>", "create_time", None, id="int-blank"),
        pytest.param("<AgentID></AgentID>", "agent_id", None, id="int-empty"),
        pytest.param("<AgentID>" + "9" * 40 + "</AgentID>", "agent_id", "9" * 40, id="int-huge"),
        pytest.param("<Scale>1.5</Scale>", "scale", "1.5", id="int-decimal"),
        pytest.param("<Location_X>abc</Location_X>", "location_x", "abc", id="float-junk"),
        pytest.param("<Location_X> 2.5 </Location_X>", "location_x", 2.5, id="float-padded"),
        pytest.param("<MsgId>CAIQ/Kxg==</MsgId>", "msg_id", "CAIQ/Kxg==", id="msgid-string"),
        pytest.param("<Label><A>1</A></Label>", "label", {"A": "1"}, id="text-holds-element"),
        pytest.param("<Scale>1</Scale><Scale>x</Scale>", "scale", 1, id="repeat-first"),
        pytest.param("<Label>a</Label><Label>b</Label>", "label", "a", id="repeat-text-first"),
    ],
)
def test_a_value_that_does_not_fit_its_type_is_kept(
    element: str, attribute: str, expected: Any
) -> None:
    """Typed conversion never refuses: the attribute keeps the text, raw keeps everything."""
    message = parse_message(LENIENT.format(element))
    assert isinstance(message, m.LocationMessage)
    value = getattr(message, attribute)
    assert (value.raw if isinstance(value, m.Node) else value) == expected


@pytest.mark.parametrize(
    ("document", "attribute", "expected"),
    [
        pytest.param(
            "<xml><MsgType>event</MsgType><Event>pic_weixin</Event>"
            "<SendPicsInfo>none</SendPicsInfo></xml>",
            "send_pics_info",
            "none",
            id="element-holds-text",
        ),
        pytest.param(
            "<xml><MsgType>event</MsgType><Event>pic_weixin</Event><SendPicsInfo><Count>2</Count>"
            "</SendPicsInfo><SendPicsInfo><Count>3</Count></SendPicsInfo></xml>",
            "send_pics_info.count",
            2,
            id="element-repeated-first",
        ),
        pytest.param(
            "<xml><MsgType>event</MsgType><MsgType>text</MsgType><Event>CLICK</Event>"
            "<Event>view</Event></xml>",
            "event",
            "click",
            id="label-repeated-first",
        ),
        pytest.param(
            '{"msgtype": "text", "msgid": 12, "from": {"userid": 7}, "create_time": "x"}',
            "create_time",
            "x",
            id="json-int-junk",
        ),
        pytest.param(
            '{"msgtype": "text", "msgid": 12, "from": {"userid": 7}}', "msg_id", "12", id="json-id"
        ),
        pytest.param(
            '{"msgtype": "text", "from": {"userid": true}}', "from_user_name", True, id="json-bool"
        ),
        pytest.param(
            '{"msgtype": "text", "text": {"content": ["a", "b"]}}', "content", "a", id="json-list"
        ),
    ],
)
def test_unexpected_shapes_are_kept(document: str, attribute: str, expected: Any) -> None:
    """Nested where text was expected, text where nested, repeats, JSON of other types."""
    assert resolve(parse_message(document), attribute) == expected


#: Element names and keys the models read, so the fuzzers hit the typed conversions.
KNOWN_NAMES = [
    "MsgType",
    "Event",
    "InfoType",
    "ChangeType",
    "MsgId",
    "AgentID",
    "CreateTime",
    "Content",
    "EventKey",
    "FromUserName",
    "SendPicsInfo",
    "PicList",
    "item",
    "Count",
    "PicMd5Sum",
    "ApprovalInfo",
    "SpRecord",
    "Details",
    "Location_X",
    "ExtAttr",
    "Item",
    "Type",
]
KNOWN_LABELS = [
    "text",
    "event",
    "location",
    "change_contact",
    "pic_sysphoto",
    "sys_approval_change",
    "suite_ticket",
    "create_user",
    "LOCATION",
]
XML_TREE = st.recursive(
    st.sampled_from(KNOWN_LABELS) | st.text(st.characters(codec="ascii", min_codepoint=32)),
    lambda children: st.dictionaries(st.sampled_from(KNOWN_NAMES), children | st.lists(children)),
    max_leaves=15,
)
JSON_TREE = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.sampled_from([*KNOWN_LABELS, "enter_chat", "template_card_event", "feedback_event"]),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(
            st.sampled_from(
                [
                    "msgtype",
                    "event",
                    "eventtype",
                    "text",
                    "content",
                    "from",
                    "userid",
                    "msgid",
                    "create_time",
                    "mixed",
                    "msg_item",
                    "feedback_event",
                    "type",
                    "inaccurate_reason_list",
                    "template_card_event",
                    "selected_items",
                ]
            ),
            children,
        )
    ),
    max_leaves=15,
)


def xml_document(tree: Any) -> str:
    def write(value: Any) -> str:
        if isinstance(value, dict):
            return "".join(
                "".join(
                    f"<{name}>{write(item)}</{name}>"
                    for item in (child if isinstance(child, list) else [child])
                )
                for name, child in value.items()
            )
        return str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")

    return f"<xml>{write(tree)}</xml>"


class TestFuzz:
    """Whatever arrives, parse_message returns a model or raises ParseError, nothing else."""

    @settings(max_examples=300, deadline=None)
    @given(document=st.binary(max_size=300) | st.text(max_size=300))
    def test_arbitrary_input(self, document: bytes | str) -> None:
        """Random bytes and text."""
        with contextlib.suppress(ParseError):
            parse_message(document)

    @settings(max_examples=300, deadline=None)
    @given(tree=XML_TREE)
    def test_xml_with_known_elements(self, tree: Any) -> None:
        """Known element names holding unexpected shapes: well-formed, so always parsed."""
        assert isinstance(parse_message(xml_document(tree)), Message)

    @settings(max_examples=300, deadline=None)
    @given(
        document=st.dictionaries(
            st.sampled_from(["msgtype", "event", "from", "msgid", "text", "mixed", "create_time"]),
            JSON_TREE,
        )
    )
    def test_json_with_known_keys(self, document: dict[str, Any]) -> None:
        """Known AI-bot keys holding unexpected types."""
        try:
            message = parse_message(json.dumps({"msgtype": "text", **document}))
        except ParseError:
            return
        assert message.is_aibot


@pytest.mark.parametrize(
    ("document", "flat", "expected"),
    [
        pytest.param(
            "<xml><A><![CDATA[x]]></A><B>1</B></xml>", True, {"A": "x", "B": "1"}, id="flat"
        ),
        pytest.param(
            "\n<xml>\n\t<A><![CDATA[中 é]]></A>\n</xml>\n", True, {"A": "中 é"}, id="spaces"
        ),
        pytest.param(
            "<xml><A><![CDATA[a]]]]><![CDATA[>]]></A></xml>", False, {"A": "a]]>"}, id="split-cdata"
        ),
        pytest.param(
            "<xml><A><![CDATA[[微笑] ]]]></A></xml>", True, {"A": "[微笑] ]"}, id="brackets"
        ),
        pytest.param("<xml><A></A><B><![CDATA[]]></B></xml>", True, {"A": "", "B": ""}, id="empty"),
        pytest.param("<xml><A><![CDATA[a\r\nb]]></A></xml>", False, {"A": "a\nb"}, id="cr"),
        pytest.param("<xml><A>a &amp; b</A></xml>", False, {"A": "a & b"}, id="entity"),
        pytest.param("<xml><A>1</A><A>2</A></xml>", False, {"A": ["1", "2"]}, id="repeated"),
        pytest.param("<xml><A><B>1</B></A></xml>", False, {"A": {"B": "1"}}, id="nested"),
        pytest.param('<xml><A k="v">1</A></xml>', False, {"A": "1"}, id="attribute"),
        pytest.param("<xml><A/></xml>", False, {"A": ""}, id="self-closing"),
        pytest.param(
            "<?xml version='1.0'?><xml><A>1</A></xml>", False, {"A": "1"}, id="declaration"
        ),
        pytest.param("<xml><!-- c --><A>1</A></xml>", False, {"A": "1"}, id="comment"),
        pytest.param("<root><A>1</A></root>", False, {"A": "1"}, id="other-root"),
        pytest.param("<xml><A>x]y</A></xml>", False, {"A": "x]y"}, id="bracket-in-text"),
    ],
)
def test_xml_to_dict_reads_flat_documents_directly_and_the_rest_with_lxml(
    document: str, flat: bool, expected: dict[str, Any]
) -> None:
    """The flat shortcut takes only what it reads with certainty; both paths agree."""
    from flask_wecom.safe_xml import _read_flat, xml_to_dict

    assert (_read_flat(document) is not None) is flat
    assert xml_to_dict(document) == expected
    assert xml_to_dict(document.encode()) == expected


@pytest.mark.parametrize(
    "document",
    [
        pytest.param("<xml><A>\ufffe</A></xml>", id="non-character"),
        pytest.param("<xml><A>\x01</A></xml>", id="control"),
        pytest.param("<xml><A>\ud800</A></xml>", id="lone-surrogate"),
        pytest.param("<xml><A>1</B></xml>", id="mismatched"),
        pytest.param("<xml><A>1</A>", id="unclosed"),
    ],
)
def test_xml_to_dict_refuses_what_xml_forbids_on_either_path(document: str) -> None:
    from flask_wecom.safe_xml import xml_to_dict

    with pytest.raises(ParseError):
        xml_to_dict(document)


def test_building_a_model_needs_every_required_field() -> None:
    """Models are filled without their __init__; a missing required field still fails loudly."""

    @dataclasses.dataclass(frozen=True, kw_only=True)
    class Strict(m.Node):
        needed: str

    assert model._build(Strict, {"Needed": "x"}, {"needed": "x"}) == Strict(
        raw={"Needed": "x"}, needed="x"
    )
    with pytest.raises(TypeError, match="needed"):
        model._build(Strict, {}, {})


EVENTS_DOC = Path(__file__).parent.parent / "docs" / "events.md"
TABLE_START = "<!-- callback table: generated from flask_wecom.messages.callback_table() -->"
TABLE_END = "<!-- end of callback table -->"


def callback_table_markdown() -> str:
    """The callback table as docs/events.md publishes it (see test_events_doc_lists_every_model)."""
    rows = [
        f"| {row.channel} | `{row.path}` | `{row.model.__name__}` | [{row.doc.rsplit('/', 1)[-1]}]"
        f"({row.doc}) |"
        for row in m.callback_table()
    ]
    return "\n".join(["| Channel | Key | Model | Doc |", "|---|---|---|---|", *rows])


def test_events_doc_lists_every_model() -> None:
    """docs/events.md has the registry table exactly (python -m tests.test_messages prints it)."""
    text = EVENTS_DOC.read_text("utf-8")
    published = text.split(TABLE_START, 1)[1].split(TABLE_END, 1)[0].strip()
    assert published == callback_table_markdown()


def test_every_model_has_an_official_doc_link() -> None:
    """Each registered path points at a page of the official documentation."""
    table = m.callback_table()
    assert {row.doc.rsplit("/", 1)[0] for row in table} == {m.DOC_BASE.rstrip("/")}
    assert {(row.channel, row.path) for row in table} == set(registered_paths())


if __name__ == "__main__":
    print(callback_table_markdown())


def overload_names(method: Callable[..., Any]) -> dict[str, str]:
    """Name -> model class name, read from the ``Literal`` overloads of a Router decorator."""
    table = {}
    for variant in typing.get_overloads(method):
        hints = variant.__annotations__
        names = next(iter(hints.values()))
        if names.startswith("Literal["):
            model_name = hints["return"].removeprefix("HandlerDecorator[m.").removesuffix("]")
            for name in re.findall(r"['\"](\w+)['\"]", names):
                table[name] = model_name
    return table


def single_model_names(
    channels: set[str], name_at: Callable[[list[str]], str | None]
) -> dict[str, str]:
    """Names that always parse into one model across ``channels``: name -> model class name."""
    models: dict[str, set[str]] = {}
    for (channel, path), model_class in registered_paths().items():
        name = name_at(path.split("/"))
        if channel in channels and name:
            models.setdefault(name, set()).add(model_class.__name__)
    return {name: found.pop() for name, found in models.items() if len(found) == 1}


@pytest.mark.skipif(sys.version_info < (3, 11), reason="typing.get_overloads is new in Python 3.11")
@pytest.mark.parametrize(
    ("method", "expected"),
    [
        pytest.param(
            Router.event,
            single_model_names(
                {"app", "aibot"}, lambda p: p[1] if p[0] == "event" and len(p) > 1 else None
            ),
            id="event",
        ),
        pytest.param(
            Router.message,
            single_model_names({"app", "aibot"}, lambda p: p[0] if len(p) == 1 else None),
            id="message",
        ),
        pytest.param(
            Router.info_type, single_model_names({"suite"}, lambda p: p[0]), id="info_type"
        ),
    ],
)
def test_typed_decorators_follow_the_registry(
    method: Callable[..., Any], expected: dict[str, str]
) -> None:
    """Each name that always parses into one model has an overload typed with that model."""
    expected.pop("event", None)  # the bare message type "event" is every event
    assert overload_names(method) == expected


TYPED_HANDLERS = """
import re
from flask_wecom.messages import ClickEvent, LocationEvent, Message, TextMessage
from flask_wecom.router import Router

router = Router()

@router.event("click")
def clicked(message: ClickEvent) -> str:
    return message.event_key or ""

@router.event("click", key=re.compile("(.*)"))
def clicked_with_group(message: Message, group: str) -> str:
    return group

@router.message("text")
def texted(message: TextMessage) -> str:
    return message.content or ""

@router.event("location")
def located(message: ClickEvent) -> None:  # error: the wrong model
    pass

@router.event("click")
def misspelt(message: ClickEvent) -> object:
    return message.evnt_key  # error: no such field

reveal_type(clicked)
"""


def test_mypy_checks_handlers_against_their_model(tmp_path: Path) -> None:
    """mypy --strict accepts matching handlers and catches a wrong model and a typo."""
    api = pytest.importorskip("mypy.api")
    handlers = tmp_path / "handlers.py"
    handlers.write_text(TYPED_HANDLERS, "utf-8")
    out, _, status = api.run(["--strict", "--cache-dir", str(tmp_path / "cache"), str(handlers)])
    errors = [line for line in out.splitlines() if ": error:" in line]
    assert status == 1 and len(errors) == 2, out
    assert 'expected "Callable[[LocationEvent], None]"' in errors[0], out
    assert '"ClickEvent" has no attribute "evnt_key"' in errors[1], out
    assert 'Revealed type is "def (flask_wecom.messages.ClickEvent) -> ' in out, out
