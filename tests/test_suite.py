"""Third-party suites (第三方应用): receive ids, suite_ticket, 'success' answers, data callbacks."""

from __future__ import annotations

import pytest
from flask import Flask

from flask_wecom import TextReply, WeCom, WeComSuite
from flask_wecom.messages import Message
from flask_wecom.testing import CallbackSigner, WeComTestClient
from tests.support.vectors import KEY, TOKEN

SUITE_ID = "ww4asffe99e54c0fxxxx"
PROVIDER_CORP_ID = "wxprovider0123456"
AUTH_CORP_ID = "wxauthcorp0000001"


def suite_xml(info_type: str, **fields: str) -> str:
    body = "".join(f"<{k}><![CDATA[{v}]]></{k}>" for k, v in fields.items())
    return (
        f"<xml><SuiteId><![CDATA[{SUITE_ID}]]></SuiteId><InfoType><![CDATA[{info_type}]]></InfoType>"
        f"<TimeStamp>1403610513</TimeStamp>{body}</xml>"
    )


@pytest.fixture
def app() -> Flask:
    app = Flask(__name__)
    app.config.update(
        WECOM_SUITE_TOKEN=TOKEN,
        WECOM_SUITE_ENCODING_AES_KEY=KEY,
        WECOM_SUITE_SUITE_ID=SUITE_ID,
        WECOM_SUITE_CORP_ID=PROVIDER_CORP_ID,
    )
    return app


def client(app: Flask, receive_id: str) -> WeComTestClient:
    return WeComTestClient(app, CallbackSigner(TOKEN, KEY, receive_id), "/suite")


@pytest.mark.parametrize(
    ("method", "receive_id", "status"),
    [
        pytest.param("GET", PROVIDER_CORP_ID, 200, id="get-with-provider-corp-id"),
        pytest.param("POST", SUITE_ID, 200, id="post-with-suite-id"),
        pytest.param("GET", "wxsomeoneelse", 400, id="get-with-other-id"),
        pytest.param("POST", "wxsomeoneelse", 400, id="post-with-other-id"),
    ],
)
def test_receive_id_rules(app: Flask, method: str, receive_id: str, status: int) -> None:
    WeComSuite(app)
    kit = client(app, receive_id)
    request = (
        kit.signer.verification("echo")
        if method == "GET"
        else kit.signer.callback(suite_xml("suite_ticket", SuiteTicket="T"))
    )
    assert kit.send(request).status == status


def test_suite_ticket_is_stored_and_read_back(app: Flask) -> None:
    suite = WeComSuite(app)
    assert suite.suite_ticket(app) is None
    response = client(app, SUITE_ID).send(
        client(app, SUITE_ID).signer.callback(suite_xml("suite_ticket", SuiteTicket="Cfp0_ticket"))
    )
    assert (response.status, response.body) == (200, b"success")
    assert suite.suite_ticket(app) == "Cfp0_ticket"


@pytest.mark.parametrize(
    "info_type",
    ["create_auth", "change_auth", "cancel_auth", "reset_permanent_code", "brand_new_type"],
)
def test_every_command_is_answered_success(app: Flask, info_type: str) -> None:
    suite = WeComSuite(app)
    seen: list[str] = []

    @suite.info_type("create_auth")
    def created(message: Message) -> str:
        seen.append(message.auth_code or "")
        return "ignored: suites answer success"

    kit = client(app, SUITE_ID)
    request = kit.signer.callback(
        suite_xml(info_type, AuthCode="AUTHCODE", AuthCorpId=AUTH_CORP_ID)
    )
    response = kit.send(request)
    assert (response.status, response.body) == (200, b"success")
    assert seen == (["AUTHCODE"] if info_type == "create_auth" else [])
    retry = kit.send(kit.signer.callback(request.plaintext))  # WeCom's retry: same answer
    assert (retry.status, retry.body) == (200, b"success")
    assert len(seen) == (1 if info_type == "create_auth" else 0)


def test_data_callbacks_accept_the_authorising_corps(app: Flask) -> None:
    """Data callbacks (数据回调) carry the authorising corp's CorpID; list the ones you serve."""
    data = WeCom(
        name="suite_data",
        path="/suite/data",
        token=TOKEN,
        encoding_aes_key=KEY,
        corp_id=f"{PROVIDER_CORP_ID},{AUTH_CORP_ID}",
    )
    data.message("text")(lambda m: f"hello {m.to_user_name}")
    data.init_app(app)
    kit = WeComTestClient(app, CallbackSigner(TOKEN, KEY, AUTH_CORP_ID), "/suite/data")
    assert kit.send_text("hi").reply == TextReply(f"hello {AUTH_CORP_ID}")
    stranger = WeComTestClient(app, CallbackSigner(TOKEN, KEY, "wxstranger"), "/suite/data")
    assert stranger.send_text("hi").status == 400


def test_missing_suite_id_fails_at_init_app() -> None:
    app = Flask(__name__)
    app.config.update(
        WECOM_SUITE_TOKEN=TOKEN, WECOM_SUITE_ENCODING_AES_KEY=KEY, WECOM_SUITE_CORP_ID="x"
    )
    with pytest.raises(RuntimeError, match="WECOM_SUITE_SUITE_ID"):
        WeComSuite(app)
