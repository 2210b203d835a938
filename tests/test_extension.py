"""flask_wecom.extension: app factories, config, decorators, blueprints, reply helpers."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask

from flask_wecom import (
    Article,
    ImageReply,
    NewsReply,
    Reply,
    TextReply,
    UpdateButtonReply,
    UpdateTaskcardReply,
    UpdateTemplateCardReply,
    VideoReply,
    VoiceReply,
    WeCom,
    current_message,
)
from flask_wecom.errors import ConfigError
from flask_wecom.messages import Message
from flask_wecom.testing import CallbackResponse, CallbackSigner, WeComTestClient
from tests.support.vectors import CORP_ID, KEY, TOKEN

OTHER_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
CONFIG = {"WECOM_TOKEN": TOKEN, "WECOM_ENCODING_AES_KEY": KEY, "WECOM_CORP_ID": CORP_ID}


def make_app(**config: Any) -> Flask:
    app = Flask(__name__)
    app.config.update({**CONFIG, **config})
    return app


@pytest.fixture
def signer() -> CallbackSigner:
    return CallbackSigner(TOKEN, KEY, CORP_ID)


@pytest.fixture
def app_and_wecom() -> tuple[Flask, WeCom]:
    app = make_app()
    return app, WeCom(app)


def client_for(app: Flask, signer: CallbackSigner, path: str = "/wecom") -> WeComTestClient:
    return WeComTestClient(app, signer, path)


# -- set-up -------------------------------------------------------------------------------


def test_app_factory_pattern(signer: CallbackSigner) -> None:
    wecom = WeCom()

    @wecom.message("text")
    def echo(message: Message) -> str:
        return f"echo: {message.content}"

    def create_app() -> Flask:
        app = make_app()
        wecom.init_app(app)
        return app

    first, second = create_app(), create_app()
    for app in (first, second):
        assert client_for(app, signer).send_text("hi").reply == TextReply("echo: hi")
        assert "wecom" in app.extensions


def test_registering_twice_raises(app_and_wecom: tuple[Flask, WeCom]) -> None:
    app, wecom = app_and_wecom
    with pytest.raises(RuntimeError, match="already registered"):
        wecom.init_app(app)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        pytest.param({"WECOM_TOKEN": None}, "WECOM_TOKEN", id="missing-token"),
        pytest.param({"WECOM_CORP_ID": None}, "WECOM_CORP_ID", id="missing-corp-id"),
        pytest.param({"WECOM_ENCODING_AES_KEY": KEY[:40]}, "43 characters", id="short-key"),
        pytest.param({"WECOM_TOKEN": ""}, "WECOM_TOKEN must be set", id="empty-token"),
        pytest.param(
            {"WECOM_TOKEN": TOKEN + " "}, "WECOM_TOKEN has white space", id="token-trailing-space"
        ),
        pytest.param({"WECOM_CORP_ID": ""}, "WECOM_CORP_ID must be set", id="empty-corp-id"),
        pytest.param(
            {"WECOM_CORP_ID": "ww1, ww2 "}, "WECOM_CORP_ID has white space", id="corp-id-space"
        ),
        pytest.param({"WECOM_DEADLINE": "soon"}, "WECOM_DEADLINE must be a number", id="deadline"),
        pytest.param(
            {"WECOM_DEADLINE": 5}, "WECOM_DEADLINE must be at least 0 and under 5", id="deadline-5"
        ),
        pytest.param(
            {"WECOM_AGENT_ID": "sales"}, "WECOM_AGENT_ID must be the app's numeric", id="agent-id"
        ),
        pytest.param({"WECOM_DEDUP": "maybe"}, "WECOM_DEDUP must be true or false", id="dedup"),
        pytest.param(
            {"WECOM_DEDUP_TTL": 100}, "WECOM_DEDUP_TTL must be at least twice", id="ttl-short"
        ),
        pytest.param({"WECOM_THREADS": 0}, "WECOM_THREADS must be at least 1", id="threads"),
    ],
)
def test_bad_config_fails_at_init_app(config: dict[str, Any], message: str) -> None:
    app = make_app(**config)
    with pytest.raises(ConfigError, match=message) as raised:
        WeCom(app)
    assert raised.value.key.startswith("WECOM_")


def test_second_instance_may_not_change_app_wide_settings() -> None:
    app = make_app()
    WeCom(app)
    with pytest.raises(ConfigError, match=r"WECOM_DEDUP_TTL given to WeCom .sales. differs"):
        WeCom(app, name="sales", path="/sales", dedup_ttl=900)


def test_unknown_option_raises() -> None:
    with pytest.raises(TypeError, match="TOKN"):
        WeCom(tokn="x")


def test_options_win_over_config(signer: CallbackSigner) -> None:
    app = make_app(WECOM_TOKEN="wrongToken2024abcd")
    WeCom(app, token=TOKEN, path="/callback")
    assert client_for(app, signer, "/callback").verify_url("42").body == b"42"


def test_config_from_environment_strings(signer: CallbackSigner) -> None:
    """Values read from the environment are strings: "false" turns dedup off."""
    app = make_app(WECOM_DEDUP="false", WECOM_MAX_BODY="4096")
    WeCom(app)
    assert app.extensions["wecom"].middleware.dedup is None
    assert app.extensions["wecom"].middleware.pipeline.max_body == 4096


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        pytest.param({}, 0.0, id="memory-default"),
        pytest.param({"redis": True}, 0.05, id="redis-default"),
        pytest.param({"redis": True, "WECOM_DEDUP_WRITE_BEHIND": "0"}, 0.0, id="redis-off"),
        pytest.param({"WECOM_DEDUP_WRITE_BEHIND": 0.2}, 0.2, id="memory-set"),
    ],
)
def test_dedup_write_behind_setting(
    settings: dict[str, Any], expected: float, request: pytest.FixtureRequest
) -> None:
    config = {k: v for k, v in settings.items() if k != "redis"}
    if settings.get("redis"):
        config["WECOM_REDIS_URL"] = request.getfixturevalue("redis_url")
    app = make_app(**config)
    WeCom(app)
    dedup = app.extensions["wecom"].middleware.dedup
    assert dedup is not None and dedup.write_behind == expected


# -- decorators and handlers --------------------------------------------------------------------


def test_decorators(app_and_wecom: tuple[Flask, WeCom], signer: CallbackSigner) -> None:
    app, wecom = app_and_wecom

    @wecom.message("text", content=re.compile(r"^weather (?P<city>\w+)$"))
    def weather(message: Message, city: str) -> str:
        return f"sunny in {city}"

    @wecom.message("text")
    def echo(message: Message) -> str:
        return f"echo: {current_message.content}"

    @wecom.event("click", key="MENU_A")
    def menu_a(message: Message) -> str:
        return "A"

    @wecom.event("change_contact", change_type="delete_user")
    def deleted(message: Message) -> None:
        seen.append(message.user_id)

    @wecom.default
    def fallback(message: Message) -> str:
        return f"default for {message.type}/{message.event}"

    seen: list[str] = []
    client = client_for(app, signer)
    table: list[tuple[CallbackResponse, Reply | None]] = [
        (client.send_text("weather paris"), TextReply("sunny in paris")),
        (client.send_text("hello"), TextReply("echo: hello")),
        (client.click("MENU_A"), TextReply("A")),
        (client.click("MENU_B"), TextReply("default for event/click")),
        (client.send(signer.change_contact("delete_user", {"UserID": "lisi"})), None),
    ]
    for response, expected in table:
        assert (response.status, response.reply) == (200, expected)
    assert seen == ["lisi"]


def test_unhandled_event_is_an_empty_200(
    app_and_wecom: tuple[Flask, WeCom], signer: CallbackSigner
) -> None:
    app, _ = app_and_wecom
    response = client_for(app, signer).send_event("batch_job_result", {"BatchJob": {"JobId": "j"}})
    assert (response.status, response.body) == (200, b"")


@pytest.mark.parametrize(
    ("handler_result", "log_text"),
    [
        pytest.param(RuntimeError("db down"), "handler for text/- failed", id="raises"),
        pytest.param(42, "handler for text/- failed", id="returns-int"),
    ],
)
def test_handler_errors_are_logged_and_answered_empty(
    signer: CallbackSigner, caplog: pytest.LogCaptureFixture, handler_result: Any, log_text: str
) -> None:
    app = make_app()
    wecom = WeCom(app)

    @wecom.message("text")
    def broken(message: Message) -> Any:
        if isinstance(handler_result, Exception):
            raise handler_result
        return handler_result

    with caplog.at_level(logging.ERROR, logger="flask_wecom"):
        response = client_for(app, signer).send_text("hi")
    assert (response.status, response.body) == (200, b"")
    assert log_text in caplog.text


def test_error_handler_decides_the_reply(signer: CallbackSigner) -> None:
    app = make_app()
    wecom = WeCom(app)

    @wecom.message("text")
    def broken(message: Message) -> str:
        raise LookupError("no such order")

    @wecom.errorhandler
    def sorry(message: Message, exc: Exception) -> str:
        return f"sorry: {exc}"

    assert client_for(app, signer).send_text("hi").reply == TextReply("sorry: no such order")


def test_impossible_reply_is_refused_with_an_empty_200(
    app_and_wecom: tuple[Flask, WeCom], signer: CallbackSigner, caplog: pytest.LogCaptureFixture
) -> None:
    """change_contact accepts no passive reply (doc 90241): the reply is dropped and logged."""
    app, wecom = app_and_wecom
    wecom.event("change_contact")(lambda m: "thanks")
    response = client_for(app, signer).send(signer.change_contact("create_user", {"UserID": "x"}))
    assert (response.status, response.body) == (200, b"")
    assert "reply refused" in caplog.text


CARD = {"card_type": "button_interaction", "main_title": {"title": "Approved"}}

REPLIES: list[Any] = [
    pytest.param(lambda s: s.text("x"), TextReply("plain ]]> <text> & 😀"), id="text"),
    pytest.param(lambda s: s.text("x"), ImageReply("MEDIA_1"), id="image"),
    pytest.param(lambda s: s.text("x"), VoiceReply("MEDIA_2"), id="voice"),
    pytest.param(lambda s: s.text("x"), VideoReply("MEDIA_3", "Title", "Desc"), id="video"),
    pytest.param(
        lambda s: s.click("K"),
        NewsReply([Article("One", "first", "http://p/1.png", "http://a/1"), Article("Two")]),
        id="news",
    ),
    pytest.param(
        lambda s: s.event("template_card_event", {"EventKey": "btn", "TaskId": "t1"}),
        UpdateButtonReply("Done"),
        id="update-button",
    ),
    pytest.param(
        lambda s: s.event("template_card_event", {"EventKey": "btn", "TaskId": "t1"}),
        UpdateTemplateCardReply(CARD),
        id="update-template-card",
    ),
    pytest.param(
        lambda s: s.event("taskcard_click", {"EventKey": "ok", "TaskId": "t2"}),
        UpdateTaskcardReply("Accepted"),
        id="update-taskcard",
    ),
]


@pytest.mark.parametrize(("build", "reply"), REPLIES)
def test_every_reply_helper_round_trips(
    signer: CallbackSigner, build: Callable[[CallbackSigner], Any], reply: Reply
) -> None:
    app = make_app()
    wecom = WeCom(app)
    wecom.default(lambda message: reply)
    response = client_for(app, signer).send(build(signer))
    assert response.status == 200
    assert response.reply == reply
    assert response.plaintext is not None and b"<FromUserName><![CDATA[" + CORP_ID.encode() in (
        response.plaintext
    )


# -- several agents ----------------------------------------------------------------------------


def test_two_agents_via_two_blueprints(signer: CallbackSigner) -> None:
    app = make_app()
    sales = WeCom(
        name="sales", token="salesToken2024abcd", encoding_aes_key=OTHER_KEY, corp_id=CORP_ID
    )
    support = WeCom(name="support")
    sales.default(lambda m: "sales here")
    support.default(lambda m: "support here")
    app.register_blueprint(sales.blueprint, url_prefix="/sales")
    app.register_blueprint(support.blueprint, url_prefix="/support")

    sales_signer = CallbackSigner("salesToken2024abcd", OTHER_KEY, CORP_ID)
    assert client_for(app, sales_signer, "/sales/wecom").send_text("a").reply == TextReply(
        "sales here"
    )
    assert client_for(app, signer, "/support/wecom").send_text("a").reply == TextReply(
        "support here"
    )
    # A callback signed for one agent is refused by the other.
    assert client_for(app, signer, "/sales/wecom").send_text("a").status == 403
    assert client_for(app, sales_signer, "/support/wecom").send_text("a").status == 403


def test_two_instances_need_two_names() -> None:
    app = make_app()
    WeCom(app)
    with pytest.raises(RuntimeError, match="own name"):
        WeCom(app)
    with pytest.raises(RuntimeError, match="own name"):
        WeCom(name="wecom").init_app(app)


def test_key_rotation_from_config(signer: CallbackSigner) -> None:
    app = make_app(
        WECOM_TOKEN="newToken2024abcdef",
        WECOM_ENCODING_AES_KEY=OTHER_KEY,
        WECOM_PREVIOUS_CREDENTIALS=json.dumps([{"token": TOKEN, "encoding_aes_key": KEY}]),
    )
    WeCom(app).default(lambda m: "ok")
    new_signer = CallbackSigner("newToken2024abcdef", OTHER_KEY, CORP_ID)
    assert client_for(app, new_signer).send_text("a").reply == TextReply("ok")
    assert client_for(app, signer).send_text("a").reply == TextReply("ok")


def test_cli_lists_endpoints() -> None:
    app = make_app()
    WeCom(app)
    WeCom(name="sales", path="/sales").init_app(app)
    result = app.test_cli_runner().invoke(
        args=["wecom", "endpoints", "--base-url", "https://a.example"]
    )
    assert result.exit_code == 0
    assert "wecom: https://a.example/wecom" in result.output
    assert "sales: https://a.example/sales" in result.output
