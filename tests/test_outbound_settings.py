"""WECOM_API_ALLOW_HTTP and WECOM_RESPONSE_URL_ORIGINS: read, checked, and wired to the API
client and to an AI bot's response_url check."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask

from flask_wecom import AIBot, WeCom
from flask_wecom.aibot import BotReceiver
from flask_wecom.client import UnsafeURLError
from flask_wecom.errors import ConfigError
from flask_wecom.messages import Message, parse_message
from flask_wecom.receivers import Receiver
from flask_wecom.settings import read_settings
from flask_wecom.testing import aibot_payload
from flask_wecom.wiring import pipeline_from_config
from tests.support.bot_streams import BOT
from tests.support.fake_wecom_api import FakeWeComAPI
from tests.support.vectors import CORP_ID, KEY, TOKEN

APP = {"WECOM_TOKEN": TOKEN, "WECOM_ENCODING_AES_KEY": KEY, "WECOM_CORP_ID": CORP_ID}
#: An app with an API client (late replies by message/send).
API_APP = {**APP, "WECOM_SECRET": "s" * 43, "WECOM_AGENT_ID": "1000002"}
#: An http API that is not on loopback: only ever checked, never reached.
PLAIN_HTTP_API = "http://wecom-proxy.corp.example:8080"
PRIVATE_ORIGIN = "https://wecom.corp.example"


# -- reading ------------------------------------------------------------------------------------


ORIGINS = "WECOM_RESPONSE_URL_ORIGINS"


@pytest.mark.parametrize(
    ("key", "value"),
    [
        pytest.param("WECOM_API_ALLOW_HTTP", "maybe", id="allow-http"),
        pytest.param(ORIGINS, "https://a.example/cgi-bin", id="origin-with-path"),
        pytest.param(ORIGINS, "https://a.example?x=1", id="origin-with-query"),
        pytest.param(ORIGINS, ["ftp://a.example"], id="origin-not-http"),
        pytest.param(ORIGINS, "https://a.example,,https://b.example", id="empty-origin-in-a-list"),
        pytest.param(ORIGINS, [], id="empty-list"),
        pytest.param(ORIGINS, 443, id="not-a-list"),
    ],
)
def test_a_bad_value_names_its_key(key: str, value: object) -> None:
    with pytest.raises(ConfigError) as raised:
        read_settings({**APP, key: value}, "WECOM_")
    assert raised.value.key == key
    assert str(raised.value).startswith(key + " ")


@pytest.mark.parametrize(
    ("config", "allow_http", "origins"),
    [
        pytest.param({}, False, None, id="defaults"),
        pytest.param(
            {"WECOM_API_ALLOW_HTTP": "true", "WECOM_RESPONSE_URL_ORIGINS": ""},
            True,
            None,
            id="from-the-environment-empty-origins",
        ),
        pytest.param(
            {"WECOM_RESPONSE_URL_ORIGINS": f"{PRIVATE_ORIGIN}, http://10.0.0.5:8080"},
            False,
            (PRIVATE_ORIGIN, "http://10.0.0.5:8080"),
            id="comma-separated",
        ),
        pytest.param(
            {"WECOM_API_ALLOW_HTTP": True, "WECOM_RESPONSE_URL_ORIGINS": [PRIVATE_ORIGIN + "/"]},
            True,
            (PRIVATE_ORIGIN + "/",),
            id="a-list",
        ),
    ],
)
def test_values_are_read(
    config: dict[str, Any], allow_http: bool, origins: tuple[str, ...] | None
) -> None:
    endpoint, app = read_settings({**APP, **config}, "WECOM_")
    assert (endpoint.api_allow_http, app.response_url_origins) == (allow_http, origins)


def test_allow_http_is_read_per_endpoint_like_the_base_url() -> None:
    config = {
        "WECOM_SALES_TOKEN": TOKEN,
        "WECOM_SALES_ENCODING_AES_KEY": KEY,
        "WECOM_SALES_CORP_ID": CORP_ID,
        "WECOM_SALES_API_ALLOW_HTTP": "yes",
    }
    assert read_settings(config, "WECOM_SALES_")[0].api_allow_http is True
    assert read_settings({**config, **APP}, "WECOM_")[0].api_allow_http is False


# -- the API base URL ---------------------------------------------------------------------------


def test_an_http_api_base_url_is_refused_without_the_key() -> None:
    with pytest.raises(ConfigError) as raised:
        pipeline_from_config([Receiver()], {**API_APP, "WECOM_API_BASE_URL": PLAIN_HTTP_API})
    assert raised.value.key == "WECOM_API_BASE_URL"
    assert "WECOM_API_ALLOW_HTTP" in str(raised.value)


def test_an_http_api_base_url_is_accepted_with_the_key() -> None:
    config = {**API_APP, "WECOM_API_BASE_URL": PLAIN_HTTP_API, "WECOM_API_ALLOW_HTTP": "true"}
    (endpoint,) = pipeline_from_config([Receiver()], config).endpoints
    assert endpoint.client is not None and endpoint.client.base_url == PLAIN_HTTP_API


@pytest.mark.parametrize(
    ("allow_http", "refused"), [("false", True), ("true", False)], ids=["without", "with"]
)
def test_the_flask_extension_wires_allow_http(allow_http: str, refused: bool) -> None:
    app = Flask(__name__)
    app.config.update(API_APP, WECOM_API_BASE_URL=PLAIN_HTTP_API, WECOM_API_ALLOW_HTTP=allow_http)
    if refused:
        with pytest.raises(ConfigError, match=r"^WECOM_API_BASE_URL is refused"):
            WeCom(app)
    else:
        assert WeCom(app).client(app).base_url == PLAIN_HTTP_API


# -- an AI bot's response_url -------------------------------------------------------------------


def asking(response_url: str) -> Message:
    """An AI-bot text callback whose active reply goes to ``response_url``."""
    payload = aibot_payload("text", {"text": {"content": "q"}}, response_url=response_url)
    return parse_message(payload.encode())


@pytest.fixture
def private_api() -> Any:
    """A fake WeCom API on loopback, standing for a private deployment: its origin is NOT
    added to the module's accepted origins (unlike the ``fake_wecom_api`` fixture)."""
    with FakeWeComAPI() as api:
        yield api


def configured_bot(origins: object) -> BotReceiver:
    bot = BotReceiver()
    config: dict[str, object] = dict(BOT)
    if origins is not None:
        config["WECOM_RESPONSE_URL_ORIGINS"] = origins
    pipeline_from_config([bot], config)
    return bot


def test_a_response_url_on_a_configured_origin_is_accepted(private_api: FakeWeComAPI) -> None:
    bot = configured_bot(f"{PRIVATE_ORIGIN},{private_api.url}")
    bot.respond(asking(f"{private_api.url}/cgi-bin/aibot/response?response_code=RC1"), "done")
    assert private_api.state()["aibot_responses"] == [
        {"msgtype": "markdown", "markdown": {"content": "done"}}
    ]


@pytest.mark.parametrize(
    ("origins", "response_url"),
    [
        pytest.param(None, "{api}/cgi-bin/aibot/response?response_code=RC1", id="default-list"),
        pytest.param(
            [PRIVATE_ORIGIN],
            "{api}/cgi-bin/aibot/response?response_code=RC1",
            id="loopback-off-the-list",
        ),
        pytest.param(
            [PRIVATE_ORIGIN],
            "https://qyapi.weixin.qq.com/cgi-bin/aibot/response?response_code=RC1",
            id="the-list-replaces-wecoms",
        ),
        pytest.param(
            [PRIVATE_ORIGIN],
            "https://wecom.corp.example.evil.example/cgi-bin/aibot/response",
            id="a-look-alike-host",
        ),
    ],
)
def test_a_response_url_off_the_list_is_refused(
    private_api: FakeWeComAPI, origins: object, response_url: str
) -> None:
    bot = configured_bot(origins)
    with pytest.raises(UnsafeURLError):
        bot.respond(asking(response_url.format(api=private_api.url)), "done")
    assert private_api.state()["aibot_responses"] == []


def test_the_flask_aibot_reads_the_origins(private_api: FakeWeComAPI) -> None:
    app = Flask(__name__)
    app.config.update(BOT, WECOM_RESPONSE_URL_ORIGINS=[private_api.url])
    bot = AIBot(app)
    assert bot.response_url_origins == (private_api.url,)
    bot.respond(asking(f"{private_api.url}/cgi-bin/aibot/response?response_code=RC2"), "ok")
    assert len(private_api.state()["aibot_responses"]) == 1
