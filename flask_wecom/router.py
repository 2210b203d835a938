# mypy: disable-error-code="overload-overlap"
# (a Literal name is narrower than str on purpose: it gets the typed decorator)
"""Route parsed callbacks to handlers: by message type, event, event key, content, and more.

Framework-free: the Flask extension uses it, and a plain WSGI app behind
:class:`~flask_wecom.middleware.WeComMiddleware` can use it directly::

    router = Router()

    @router.message("text", content=re.compile(r"weather (?P<city>\\w+)"))
    def weather(message, city):
        return f"Sunny in {city}"

    @router.event("click", key="MENU_HELP")
    def help_clicked(message):
        return "How can I help?"

    reply = router.dispatch(environ["wecom.message"])

Rules are tried in registration order and the first match wins; the default
handler (if any) runs when none matches, and :meth:`Router.dispatch` returns
None when nothing handles a message, which the caller answers with an empty
200 so that WeCom does not retry. String criteria match exactly, event names and
suite InfoTypes case-insensitively (WeCom sends ``LOCATION`` upper-case);
compiled patterns are searched, and their groups are passed to the handler:
unnamed groups as positional arguments, named groups as keyword arguments.
"""

from __future__ import annotations

import functools
import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import (
    TYPE_CHECKING,
    Any,
    Concatenate,
    Literal,
    ParamSpec,
    Protocol,
    TypedDict,
    TypeVar,
    overload,
)

from . import messages as m
from .messages import Message

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = [
    "EventOptions",
    "Handler",
    "HandlerDecorator",
    "InfoTypeOptions",
    "MessageOptions",
    "Pattern",
    "Router",
    "Rule",
    "RuleMatch",
]

#: A handler takes the message (plus any regex groups) and returns a reply or None.
Handler = Callable[..., Any]
#: An exact string, or a compiled pattern to search for.
Pattern = str | re.Pattern[str]
H = TypeVar("H", bound=Handler)
M = TypeVar("M", bound=Message)
P = ParamSpec("P")
R = TypeVar("R")


class HandlerDecorator(Protocol[M]):
    """The type of a decorator for callbacks parsed into ``M``: it takes a handler whose first
    parameter accepts ``M`` (annotated ``M`` or a base of it) and returns it unchanged.

    :meth:`Router.message`, :meth:`Router.event` and :meth:`Router.info_type` return one for a
    name that always parses into one model (``"click"``: :class:`~flask_wecom.messages.ClickEvent`),
    so that ``mypy --strict`` checks the handler's annotation, and with it its attribute names.
    Names shared by several models (``"text"``: app and AI bot) keep an untyped decorator.
    """

    def __call__(
        self, handler: Callable[Concatenate[M, P], R], /
    ) -> Callable[Concatenate[M, P], R]:
        """Register ``handler`` and return it unchanged."""
        ...


class MessageOptions(TypedDict, total=False):
    """The keyword options of :meth:`Router.message`."""

    content: Pattern | None
    agent_id: int | None
    when: Callable[[Message], bool] | None
    deferred: bool


class EventOptions(TypedDict, total=False):
    """The keyword options of :meth:`Router.event`."""

    key: Pattern | None
    change_type: str | None
    agent_id: int | None
    when: Callable[[Message], bool] | None
    deferred: bool


class InfoTypeOptions(TypedDict, total=False):
    """The keyword options of :meth:`Router.info_type`."""

    change_type: str | None
    when: Callable[[Message], bool] | None


@dataclass(frozen=True)
class RuleMatch:
    """A rule that matched a message, with the groups of its pattern."""

    rule: Rule
    args: tuple[str, ...] = ()
    kwargs: dict[str, str] = field(default_factory=dict)

    def call(self, message: Message) -> Any:
        """Run the rule's handler on ``message`` with the captured groups."""
        return self.rule.handler(message, *self.args, **self.kwargs)


@dataclass(frozen=True)
class Rule:
    """One routing rule; every criterion given must hold (None means "any").

    :param handler: called as ``handler(message, *groups, **named_groups)``.
    :param type: the message type (``.type``), e.g. ``"text"`` or ``"event"``.
    :param event: the event name (``.event``), case-insensitive.
    :param event_key: the EventKey, exact or a pattern.
    :param content: the text content, exact or a pattern.
    :param change_type: the ChangeType (change_contact, change_external_*), case-insensitive.
    :param agent_id: the AgentID.
    :param info_type: the suite InfoType (``.info_type``), case-insensitive.
    :param when: any other predicate on the message.
    :param deferred: answer WeCom at once with no reply and run the handler in the
        background; its result is sent later (the extension sends it with message/send).
    """

    handler: Handler
    type: str | None = None
    event: str | None = None
    event_key: Pattern | None = None
    content: Pattern | None = None
    change_type: str | None = None
    agent_id: int | None = None
    info_type: str | None = None
    when: Callable[[Message], bool] | None = None
    deferred: bool = False

    @functools.cached_property
    def returns_at_once(self) -> bool:
        """The handler is a generator function (sync or async): calling it runs none of its
        body, so it cannot miss a deadline; the body runs later, as an AI-bot stream."""
        return inspect.isgeneratorfunction(self.handler) or inspect.isasyncgenfunction(self.handler)

    @functools.cached_property
    def _labels(self) -> tuple[tuple[str, str], ...]:
        """(message attribute, wanted value in lower case) of the label criteria given."""
        given = (
            ("type", self.type),
            ("event", self.event),
            ("change_type", self.change_type),
            ("info_type", self.info_type),
        )
        return tuple((name, wanted.lower()) for name, wanted in given if wanted is not None)

    def match(self, message: Message) -> RuleMatch | None:
        """Return a :class:`RuleMatch` if ``message`` meets every criterion, else None."""
        for name, wanted in self._labels:
            if (getattr(message, name) or "").lower() != wanted:
                return None
        if self.agent_id is not None and message.agent_id != self.agent_id:
            return None
        groups: list[re.Match[str]] = []
        for wanted_text, text in (
            (self.event_key, message.event_key),
            (self.content, message.content),
        ):
            if wanted_text is None:
                continue
            if text is None:
                return None
            if isinstance(wanted_text, str):
                if text != wanted_text:
                    return None
                continue
            found = wanted_text.search(text)
            if found is None:
                return None
            groups.append(found)
        if self.when is not None and not self.when(message):
            return None
        if not groups:
            return RuleMatch(self)
        args = tuple(g for m in groups for g in _unnamed_groups(m))
        kwargs = {k: v for m in groups for k, v in m.groupdict().items() if v is not None}
        return RuleMatch(self, args, kwargs)


def _unnamed_groups(found: re.Match[str]) -> list[str]:
    named = set(found.re.groupindex.values())
    return [found.group(i) or "" for i in range(1, found.re.groups + 1) if i not in named]


class Router:
    """An ordered list of :class:`Rule` objects plus an optional default handler."""

    def __init__(self) -> None:
        #: The rules, in the order they are tried.
        self.rules: list[Rule] = []
        #: Runs when no rule matches; None answers with an empty reply.
        self.default_handler: Handler | None = None

    def add(self, rule: Rule) -> Rule:
        """Append ``rule``; it is tried after every rule added before it."""
        self.rules.append(rule)
        return rule

    def route(self, **criteria: Any) -> Callable[[H], H]:
        """Decorator: route messages meeting ``criteria`` (:class:`Rule` fields) to it."""

        def decorate(handler: H) -> H:
            self.add(Rule(handler, **criteria))
            return handler

        return decorate

    @overload
    def message(
        self, type: Literal["file"], **options: Unpack[MessageOptions]
    ) -> HandlerDecorator[m.BotFileMessage]: ...
    @overload
    def message(
        self, type: Literal["link"], **options: Unpack[MessageOptions]
    ) -> HandlerDecorator[m.LinkMessage]: ...
    @overload
    def message(
        self, type: Literal["location"], **options: Unpack[MessageOptions]
    ) -> HandlerDecorator[m.LocationMessage]: ...
    @overload
    def message(
        self, type: Literal["mixed"], **options: Unpack[MessageOptions]
    ) -> HandlerDecorator[m.BotMixedMessage]: ...
    @overload
    def message(
        self, type: Literal["stream"], **options: Unpack[MessageOptions]
    ) -> HandlerDecorator[m.BotStreamRefresh]: ...
    @overload
    def message(self, type: str, **options: Unpack[MessageOptions]) -> Callable[[H], H]: ...
    def message(
        self,
        type: str,
        *,
        content: Pattern | None = None,
        agent_id: int | None = None,
        when: Callable[[Message], bool] | None = None,
        deferred: bool = False,
    ) -> Callable[[H], H]:
        """Decorator: route messages of ``type`` (``"text"``, ``"image"`` ...) to the function."""
        return self.route(
            type=type, content=content, agent_id=agent_id, when=when, deferred=deferred
        )

    @overload
    def event(
        self,
        event: Literal[
            "active_restored",
            "change_app_admin",
            "close_inactive_agent",
            "low_active",
            "reopen_inactive_agent",
            "share_agent_change",
            "share_chain_change",
        ],
        **options: Unpack[EventOptions],
    ) -> HandlerDecorator[m.Event]: ...
    @overload
    def event(
        self,
        event: Literal["add_schedule", "delete_schedule", "modify_schedule"],
        **options: Unpack[EventOptions],
    ) -> HandlerDecorator[m.ScheduleEvent]: ...
    @overload
    def event(
        self, event: Literal["batch_job_result"], **options: Unpack[EventOptions]
    ) -> HandlerDecorator[m.BatchJobResultEvent]: ...
    @overload
    def event(
        self,
        event: Literal["book_meeting_room", "cancel_meeting_room"],
        **options: Unpack[EventOptions],
    ) -> HandlerDecorator[m.MeetingRoomEvent]: ...
    @overload
    def event(
        self, event: Literal["change_external_chat"], **options: Unpack[EventOptions]
    ) -> HandlerDecorator[m.ExternalChatEvent]: ...
    @overload
    def event(
        self, event: Literal["change_external_contact"], **options: Unpack[EventOptions]
    ) -> HandlerDecorator[m.ExternalContactEvent]: ...
    @overload
    def event(
        self, event: Literal["change_external_tag"], **options: Unpack[EventOptions]
    ) -> HandlerDecorator[m.ExternalTagEvent]: ...
    @overload
    def event(
        self, event: Literal["change_school_contact"], **options: Unpack[EventOptions]
    ) -> HandlerDecorator[m.SchoolContactEvent]: ...
    @overload
    def event(
        self, event: Literal["click"], **options: Unpack[EventOptions]
    ) -> HandlerDecorator[m.ClickEvent]: ...
    @overload
    def event(
        self, event: Literal["customer_acquisition"], **options: Unpack[EventOptions]
    ) -> HandlerDecorator[m.CustomerAcquisitionEvent]: ...
    @overload
    def event(
        self, event: Literal["delete_calendar", "modify_calendar"], **options: Unpack[EventOptions]
    ) -> HandlerDecorator[m.CalendarEvent]: ...
    @overload
    def event(
        self, event: Literal["enter_agent"], **options: Unpack[EventOptions]
    ) -> HandlerDecorator[m.EnterAgentEvent]: ...
    @overload
    def event(
        self, event: Literal["enter_chat"], **options: Unpack[EventOptions]
    ) -> HandlerDecorator[m.BotEvent]: ...
    @overload
    def event(
        self, event: Literal["feedback_event"], **options: Unpack[EventOptions]
    ) -> HandlerDecorator[m.BotFeedbackEvent]: ...
    @overload
    def event(
        self, event: Literal["disconnected_event"], **options: Unpack[EventOptions]
    ) -> HandlerDecorator[m.BotDisconnectedEvent]: ...
    @overload
    def event(
        self, event: Literal["inactive_alert", "low_active_alert"], **options: Unpack[EventOptions]
    ) -> HandlerDecorator[m.InactiveAlertEvent]: ...
    @overload
    def event(
        self, event: Literal["kf_account_auth_change"], **options: Unpack[EventOptions]
    ) -> HandlerDecorator[m.KfAccountAuthChangeEvent]: ...
    @overload
    def event(
        self, event: Literal["kf_msg_or_event"], **options: Unpack[EventOptions]
    ) -> HandlerDecorator[m.KfMsgOrEvent]: ...
    @overload
    def event(
        self, event: Literal["living_status_change"], **options: Unpack[EventOptions]
    ) -> HandlerDecorator[m.LivingStatusChangeEvent]: ...
    @overload
    def event(
        self, event: Literal["location"], **options: Unpack[EventOptions]
    ) -> HandlerDecorator[m.LocationEvent]: ...
    @overload
    def event(
        self, event: Literal["location_select"], **options: Unpack[EventOptions]
    ) -> HandlerDecorator[m.LocationSelectEvent]: ...
    @overload
    def event(
        self, event: Literal["msgaudit_notify"], **options: Unpack[EventOptions]
    ) -> HandlerDecorator[m.MsgAuditNotifyEvent]: ...
    @overload
    def event(
        self, event: Literal["open_approval_change"], **options: Unpack[EventOptions]
    ) -> HandlerDecorator[m.OpenApprovalChangeEvent]: ...
    @overload
    def event(
        self,
        event: Literal["pic_photo_or_album", "pic_sysphoto", "pic_weixin"],
        **options: Unpack[EventOptions],
    ) -> HandlerDecorator[m.SendPicsEvent]: ...
    @overload
    def event(
        self, event: Literal["scancode_push", "scancode_waitmsg"], **options: Unpack[EventOptions]
    ) -> HandlerDecorator[m.ScanCodeEvent]: ...
    @overload
    def event(
        self, event: Literal["subscribe"], **options: Unpack[EventOptions]
    ) -> HandlerDecorator[m.SubscribeEvent]: ...
    @overload
    def event(
        self, event: Literal["sys_approval_change"], **options: Unpack[EventOptions]
    ) -> HandlerDecorator[m.SysApprovalChangeEvent]: ...
    @overload
    def event(
        self, event: Literal["taskcard_click"], **options: Unpack[EventOptions]
    ) -> HandlerDecorator[m.TaskCardClickEvent]: ...
    @overload
    def event(
        self, event: Literal["template_card_menu_event"], **options: Unpack[EventOptions]
    ) -> HandlerDecorator[m.TemplateCardEvent]: ...
    @overload
    def event(
        self, event: Literal["unsubscribe"], **options: Unpack[EventOptions]
    ) -> HandlerDecorator[m.UnsubscribeEvent]: ...
    @overload
    def event(
        self, event: Literal["upload_media_job_finish"], **options: Unpack[EventOptions]
    ) -> HandlerDecorator[m.UploadMediaJobFinishEvent]: ...
    @overload
    def event(
        self, event: Literal["view"], **options: Unpack[EventOptions]
    ) -> HandlerDecorator[m.ViewEvent]: ...
    @overload
    def event(
        self, event: Literal["view_miniprogram"], **options: Unpack[EventOptions]
    ) -> HandlerDecorator[m.ViewMiniprogramEvent]: ...
    @overload
    def event(self, event: str, **options: Unpack[EventOptions]) -> Callable[[H], H]: ...
    def event(
        self,
        event: str,
        *,
        key: Pattern | None = None,
        change_type: str | None = None,
        agent_id: int | None = None,
        when: Callable[[Message], bool] | None = None,
        deferred: bool = False,
    ) -> Callable[[H], H]:
        """Decorator: route the event named ``event`` (any case) to the function."""
        return self.route(
            event=event,
            event_key=key,
            change_type=change_type,
            agent_id=agent_id,
            when=when,
            deferred=deferred,
        )

    @overload
    def info_type(
        self,
        info_type: Literal["cancel_auth", "change_auth", "create_auth", "reset_permanent_code"],
        **options: Unpack[InfoTypeOptions],
    ) -> HandlerDecorator[m.SuiteAuthChange]: ...
    @overload
    def info_type(
        self,
        info_type: Literal[
            "cancel_order", "change_order", "open_order", "pay_for_app_success", "refund"
        ],
        **options: Unpack[InfoTypeOptions],
    ) -> HandlerDecorator[m.SuiteOrderChange]: ...
    @overload
    def info_type(
        self,
        info_type: Literal["advanced_api_pay_success", "advanced_api_refund", "license_refund"],
        **options: Unpack[InfoTypeOptions],
    ) -> HandlerDecorator[m.SuiteLicenseOrder]: ...
    @overload
    def info_type(
        self,
        info_type: Literal["change_app_admin", "share_agent_change"],
        **options: Unpack[InfoTypeOptions],
    ) -> HandlerDecorator[m.SuiteCallback]: ...
    @overload
    def info_type(
        self, info_type: Literal["change_external_chat"], **options: Unpack[InfoTypeOptions]
    ) -> HandlerDecorator[m.SuiteExternalChatChange]: ...
    @overload
    def info_type(
        self, info_type: Literal["change_external_contact"], **options: Unpack[InfoTypeOptions]
    ) -> HandlerDecorator[m.SuiteExternalContactChange]: ...
    @overload
    def info_type(
        self, info_type: Literal["change_external_tag"], **options: Unpack[InfoTypeOptions]
    ) -> HandlerDecorator[m.SuiteExternalTagChange]: ...
    @overload
    def info_type(
        self, info_type: Literal["change_school_contact"], **options: Unpack[InfoTypeOptions]
    ) -> HandlerDecorator[m.SuiteSchoolContactChange]: ...
    @overload
    def info_type(
        self, info_type: Literal["change_school_contact_batch"], **options: Unpack[InfoTypeOptions]
    ) -> HandlerDecorator[m.SuiteSchoolContactBatch]: ...
    @overload
    def info_type(
        self, info_type: Literal["conversation_new_message"], **options: Unpack[InfoTypeOptions]
    ) -> HandlerDecorator[m.SuiteConversationNewMessage]: ...
    @overload
    def info_type(
        self, info_type: Literal["customer_acquisition"], **options: Unpack[InfoTypeOptions]
    ) -> HandlerDecorator[m.SuiteCustomerAcquisition]: ...
    @overload
    def info_type(
        self, info_type: Literal["register_corp"], **options: Unpack[InfoTypeOptions]
    ) -> HandlerDecorator[m.SuiteRegisterCorp]: ...
    @overload
    def info_type(
        self, info_type: Literal["suite_ticket"], **options: Unpack[InfoTypeOptions]
    ) -> HandlerDecorator[m.SuiteTicket]: ...
    @overload
    def info_type(self, info_type: str, **options: Unpack[InfoTypeOptions]) -> Callable[[H], H]: ...
    def info_type(
        self,
        info_type: str,
        *,
        change_type: str | None = None,
        when: Callable[[Message], bool] | None = None,
    ) -> Callable[[H], H]:
        """Decorator: route suite callbacks (第三方应用) with this InfoType to the function."""
        return self.route(info_type=info_type, change_type=change_type, when=when)

    def default(self, handler: H) -> H:
        """Decorator: the handler for messages no rule matches."""
        self.default_handler = handler
        return handler

    def resolve(self, message: Message) -> RuleMatch | None:
        """The first matching rule, else the default handler, else None."""
        for rule in self.rules:
            found = rule.match(message)
            if found is not None:
                return found
        if self.default_handler is not None:
            return RuleMatch(Rule(self.default_handler))
        return None

    def dispatch(self, message: Message) -> Any:
        """Run the handler :meth:`resolve` finds; None when nothing handles the message."""
        found = self.resolve(message)
        return None if found is None else found.call(message)
