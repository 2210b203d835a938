"""flask wecom menu push|show|delete against the fake WeCom API, and the example app's menu."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from flask import Flask

from flask_wecom import WeCom
from flask_wecom.menu import load_menu, menu_click_keys
from flask_wecom.messages import parse_message
from flask_wecom.testing import app_message_xml
from tests.support.fake_wecom_api import (
    FAKE_CORP_ID,
    FakeWeComAPI,
    wecom_settings,
)
from tests.support.vectors import KEY, TOKEN

EXAMPLE_MENU = Path(__file__).resolve().parents[1] / "example_app" / "menu.json"


@pytest.fixture
def app(fake_wecom_api: FakeWeComAPI) -> Flask:
    app = Flask(__name__)
    app.config.update(wecom_settings(fake_wecom_api.url))
    WeCom(app)
    return app


def run(app: Flask, *args: str) -> tuple[int, str]:
    result = app.test_cli_runner().invoke(args=["wecom", "menu", *args])
    return result.exit_code, result.output


def test_push_show_delete(app: Flask, fake_wecom_api: FakeWeComAPI) -> None:
    assert run(app, "push", str(EXAMPLE_MENU)) == (0, f"menu from {EXAMPLE_MENU} pushed\n")
    code, output = run(app, "show")
    assert code == 0
    assert json.loads(output)["button"] == json.loads(EXAMPLE_MENU.read_text())["button"]
    assert run(app, "delete") == (0, "menu deleted\n")
    code, output = run(app, "show")
    assert code == 1 and "46003" in output


def test_invalid_menu_is_refused_before_any_request(
    app: Flask, fake_wecom_api: FakeWeComAPI, tmp_path: Path
) -> None:
    bad = tmp_path / "menu.json"
    bad.write_text(json.dumps({"button": [{"type": "click", "name": "x" * 17, "key": "K"}]}))
    code, output = run(app, "push", str(bad))
    assert code == 1
    assert "button[0].name: 17 bytes, limit 16" in output
    assert fake_wecom_api.calls("/cgi-bin/menu/create") == 0


def test_missing_secret_is_a_clean_error(fake_wecom_api: FakeWeComAPI) -> None:
    app = Flask(__name__)
    app.config.update(WECOM_TOKEN=TOKEN, WECOM_ENCODING_AES_KEY=KEY, WECOM_CORP_ID=FAKE_CORP_ID)
    WeCom(app)
    code, output = run(app, "show")
    assert code == 1 and "WECOM_SECRET" in output


def test_unknown_agent_is_a_usage_error(app: Flask) -> None:
    code, output = run(app, "show", "--agent", "sales")
    assert code == 2 and "no WeCom instance named 'sales'" in output


def test_every_click_key_of_the_example_menu_has_a_handler(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WECOM_TOKEN", TOKEN)
    monkeypatch.setenv("WECOM_ENCODING_AES_KEY", KEY)
    monkeypatch.setenv("WECOM_CORP_ID", "ww1")
    from example_app.app import wecom

    keys = menu_click_keys(load_menu(EXAMPLE_MENU))
    assert keys == {"MENU_TODAY", "MENU_VOTE_PIZZA", "MENU_VOTE_NOODLES", "MENU_DOCS"}
    for key in sorted(keys):
        click = app_message_xml(
            "event",
            {"FromUserName": "u", "CreateTime": 1, "Event": "click", "EventKey": key},
            to_user="ww1",
        )
        found = wecom.resolve(parse_message(click))
        assert found is not None and found.rule.event_key is not None, key
