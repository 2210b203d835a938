"""flask_wecom.router: each rule kind, precedence, regex groups, the default."""

from __future__ import annotations

import re
from typing import Any

import pytest

from flask_wecom.messages import Message, parse_message
from flask_wecom.router import Router, Rule
from flask_wecom.testing import aibot_payload, app_message_xml


def app_msg(msg_type: str, **fields: object) -> Message:
    base: dict[str, object] = {"FromUserName": "zhangsan", "CreateTime": 1, "AgentID": 1000002}
    return parse_message(app_message_xml(msg_type, {**base, **fields}, to_user="ww1"))


TEXT = app_msg("text", Content="weather beijing", MsgId=1)
CLICK = app_msg("event", Event="click", EventKey="MENU_VOTE_PIZZA")
LOCATION = app_msg("event", Event="LOCATION", Latitude="23.1", Longitude="113.3", Precision="1")
DELETE_USER = app_msg("event", Event="change_contact", ChangeType="delete_user", UserID="lisi")
OTHER_AGENT = app_msg("text", Content="hi", MsgId=2, AgentID=7)
SUITE_TICKET = parse_message(
    "<xml><SuiteId><![CDATA[ww4asffe]]></SuiteId><InfoType><![CDATA[suite_ticket]]></InfoType>"
    "<TimeStamp>1403610513</TimeStamp><SuiteTicket><![CDATA[asdfasfdasdfasdf]]></SuiteTicket></xml>"
)
BOT_TEXT = parse_message(aibot_payload("text", {"text": {"content": "hello bot"}}, msgid="m1"))

RULES = [
    pytest.param(Rule(lambda m: 1, type="text"), TEXT, True, id="type"),
    pytest.param(Rule(lambda m: 1, type="TEXT"), TEXT, True, id="type-any-case"),
    pytest.param(Rule(lambda m: 1, type="image"), TEXT, False, id="type-other"),
    pytest.param(Rule(lambda m: 1, event="location"), LOCATION, True, id="event-upper-case-sent"),
    pytest.param(Rule(lambda m: 1, event="click"), CLICK, True, id="event"),
    pytest.param(Rule(lambda m: 1, event="click"), TEXT, False, id="event-on-message"),
    pytest.param(Rule(lambda m: 1, event_key="MENU_VOTE_PIZZA"), CLICK, True, id="key-exact"),
    pytest.param(Rule(lambda m: 1, event_key="MENU_VOTE"), CLICK, False, id="key-exact-is-exact"),
    pytest.param(Rule(lambda m: 1, event_key=re.compile("VOTE")), CLICK, True, id="key-regex"),
    pytest.param(Rule(lambda m: 1, event_key="X"), TEXT, False, id="key-on-text"),
    pytest.param(Rule(lambda m: 1, content="weather beijing"), TEXT, True, id="content-exact"),
    pytest.param(
        Rule(lambda m: 1, content=re.compile("^sun")), TEXT, False, id="content-regex-miss"
    ),
    pytest.param(Rule(lambda m: 1, change_type="delete_user"), DELETE_USER, True, id="change-type"),
    pytest.param(
        Rule(lambda m: 1, change_type="create_user"), DELETE_USER, False, id="change-other"
    ),
    pytest.param(Rule(lambda m: 1, agent_id=7), OTHER_AGENT, True, id="agent"),
    pytest.param(Rule(lambda m: 1, agent_id=7), TEXT, False, id="agent-other"),
    pytest.param(Rule(lambda m: 1, info_type="suite_ticket"), SUITE_TICKET, True, id="info-type"),
    pytest.param(Rule(lambda m: 1, info_type="suite_ticket"), TEXT, False, id="info-type-other"),
    pytest.param(Rule(lambda m: 1, when=lambda m: m.is_aibot), BOT_TEXT, True, id="predicate"),
    pytest.param(Rule(lambda m: 1, when=lambda m: m.is_aibot), TEXT, False, id="predicate-false"),
    pytest.param(
        Rule(lambda m: 1, type="text", content="hello bot"), BOT_TEXT, True, id="aibot-text"
    ),
    pytest.param(
        Rule(lambda m: 1, type="text", agent_id=1000002, content=re.compile("weather")),
        TEXT,
        True,
        id="all-criteria",
    ),
]


@pytest.mark.parametrize(("rule", "message", "matches"), RULES)
def test_rule_kinds(rule: Rule, message: Message, matches: bool) -> None:
    assert (rule.match(message) is not None) is matches


def test_first_match_wins_in_registration_order() -> None:
    router = Router()
    router.route(type="text")(lambda m: "first")
    router.message("text", content="weather beijing")(lambda m: "more specific, but later")
    assert router.dispatch(TEXT) == "first"


def test_regex_groups_are_passed_to_the_handler() -> None:
    router = Router()
    seen: dict[str, Any] = {}

    @router.message("text", content=re.compile(r"(\w+) (?P<city>\w+)"))
    def weather(message: Message, word: str, *, city: str) -> str:
        seen.update(word=word, city=city)
        return city

    assert router.dispatch(TEXT) == "beijing"
    assert seen == {"word": "weather", "city": "beijing"}

    @router.event("click", key=re.compile(r"^MENU_VOTE_(?P<choice>\w+)$"))
    def vote(message: Message, choice: str) -> str:
        return choice

    assert router.dispatch(CLICK) == "PIZZA"


def test_default_and_unhandled() -> None:
    router = Router()
    router.event("click")(lambda m: "clicked")
    assert router.dispatch(LOCATION) is None  # nobody handles it: the caller answers empty
    router.default(lambda m: "default")
    assert router.dispatch(LOCATION) == "default"
    assert router.dispatch(CLICK) == "clicked"


def test_decorators_return_the_function_unchanged() -> None:
    router = Router()

    def handler(message: Message) -> None:
        return None

    assert router.message("text")(handler) is handler
    assert router.event("click", key="K")(handler) is handler
    assert router.info_type("suite_ticket")(handler) is handler
    assert router.default(handler) is handler
    assert [rule.handler for rule in router.rules] == [handler] * 3
