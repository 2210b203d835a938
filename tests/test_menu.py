"""Tests for flask_wecom.menu: the documented custom menu limits, loading, click keys."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from flask_wecom.errors import MenuError
from flask_wecom.menu import load_menu, menu_click_keys, validate_menu

if TYPE_CHECKING:
    from flask_wecom.client import WeComClient
    from tests.support.fake_wecom_api import FakeWeComAPI


EXAMPLE_PATH = Path(__file__).parent / "data" / "menu_example.json"
Menu = dict[str, Any]


@pytest.fixture
def example_menu() -> Menu:
    """The example menu of doc 90231 (spec §6.2), with a view button added; valid."""
    menu: Menu = json.loads(EXAMPLE_PATH.read_text(encoding="utf-8"))
    return menu


def _click(name: str = "点击", key: str = "KEY") -> Menu:
    return {"type": "click", "name": name, "key": key}


def _top(menu: Menu, index: int) -> Menu:
    button: Menu = menu["button"][index]
    return button


def _sub(menu: Menu, index: int, sub_index: int) -> Menu:
    button: Menu = menu["button"][index]["sub_button"][sub_index]
    return button


# Each row breaks the example menu in exactly one way: (edit, expected message).
DEFECTS = [
    pytest.param(
        lambda m: m.pop("button"), "button: expected a list of 1-3 buttons", id="no-button"
    ),
    pytest.param(lambda m: m.update(button="click"), "button: expected a list", id="button-str"),
    pytest.param(lambda m: m.update(button=[]), "button: 0 buttons, expected 1-3", id="no-buttons"),
    pytest.param(
        lambda m: m["button"].append(_click()), "button: 4 buttons, expected 1-3", id="4-buttons"
    ),
    pytest.param(
        lambda m: m["button"].__setitem__(2, "click"),
        "button[2]: expected an object, got str",
        id="button-not-object",
    ),
    pytest.param(lambda m: _top(m, 2).pop("name"), "button[2].name: required", id="name-missing"),
    pytest.param(lambda m: _top(m, 2).update(name=""), "button[2].name: required", id="name-empty"),
    pytest.param(
        lambda m: _top(m, 2).update(name=7),
        "button[2].name: expected a string, got int",
        id="name-not-str",
    ),
    pytest.param(
        lambda m: _top(m, 2).update(name="发送我的位置"),
        "button[2].name: 18 bytes, limit 16",
        id="top-name-18-bytes",
    ),
    pytest.param(
        lambda m: _top(m, 0).update(name="x" * 17),
        "button[0].name: 17 bytes, limit 16",
        id="parent-name-17-bytes",
    ),
    pytest.param(
        lambda m: _top(m, 0).update(type="click"),
        "button[0].type: a parent with sub_button has no type",
        id="parent-with-type",
    ),
    pytest.param(
        lambda m: _top(m, 0).update(sub_button=[]),
        "button[0].sub_button: 0 buttons, expected 1-5",
        id="parent-no-subs",
    ),
    pytest.param(
        lambda m: _top(m, 1)["sub_button"].extend([_click(), _click()]),
        "button[1].sub_button: 6 buttons, expected 1-5",
        id="parent-6-subs",
    ),
    pytest.param(
        lambda m: _top(m, 1).update(sub_button={"type": "click"}),
        "button[1].sub_button: expected a list",
        id="subs-not-list",
    ),
    pytest.param(
        lambda m: _top(m, 1)["sub_button"].__setitem__(3, None),
        "button[1].sub_button[3]: expected an object, got NoneType",
        id="sub-not-object",
    ),
    pytest.param(
        lambda m: _sub(m, 1, 2).update(name="微信相册发图微信相册发图微" + "x" * 2),
        "button[1].sub_button[2].name: 41 bytes, limit 40",
        id="sub-name-41-bytes",
    ),
    pytest.param(
        lambda m: _sub(m, 0, 1).update(sub_button=[_click()]),
        "button[0].sub_button[1].sub_button: menus have two levels at most",
        id="third-level",
    ),
    pytest.param(
        lambda m: _top(m, 2).update(type="clik"),
        "button[2].type: 'clik' is not one of click, location_select,",
        id="type-unknown",
    ),
    pytest.param(
        lambda m: _top(m, 2).pop("type"),
        "button[2].type: None is not one of",
        id="type-missing",
    ),
    pytest.param(
        lambda m: _top(m, 2).pop("key"), "button[2].key: required", id="location-key-missing"
    ),
    pytest.param(
        lambda m: _sub(m, 0, 1).update(key=""),
        "button[0].sub_button[1].key: required",
        id="scancode-key-empty",
    ),
    pytest.param(
        lambda m: _top(m, 2).update(key="k" * 129),
        "button[2].key: 129 bytes, limit 128",
        id="key-129-bytes",
    ),
    pytest.param(
        lambda m: _sub(m, 1, 3).pop("url"),
        "button[1].sub_button[3].url: required",
        id="view-url-missing",
    ),
    pytest.param(
        lambda m: _sub(m, 1, 3).update(url="https://example.com/" + "u" * 1005),
        "button[1].sub_button[3].url: 1025 bytes, limit 1024",
        id="view-url-1025-bytes",
    ),
    pytest.param(
        lambda m: _sub(m, 0, 2).pop("pagepath"),
        "button[0].sub_button[2].pagepath: required",
        id="miniprogram-pagepath-missing",
    ),
    pytest.param(
        lambda m: _sub(m, 0, 2).pop("appid"),
        "button[0].sub_button[2].appid: required",
        id="miniprogram-appid-missing",
    ),
]


@pytest.mark.parametrize(("edit", "message"), DEFECTS)
def test_defect_is_named_by_path(
    example_menu: Menu, edit: Callable[[Menu], object], message: str
) -> None:
    """validate_menu reports the one defect with the path of the offending field."""
    edit(example_menu)
    with pytest.raises(MenuError, match=f"^{re.escape(message)}"):
        validate_menu(example_menu)


@pytest.mark.parametrize(("edit", "message"), DEFECTS)
def test_menu_create_rejects_defect_before_any_request(
    example_menu: Menu,
    edit: Callable[[Menu], object],
    message: str,
    fake_wecom_api: FakeWeComAPI,
    wecom_client_factory: Callable[..., WeComClient],
) -> None:
    """WeComClient.menu_create validates first: the fake sees no gettoken and no menu/create."""
    edit(example_menu)
    client = wecom_client_factory()
    with pytest.raises(MenuError, match=f"^{re.escape(message)}"):
        client.menu_create(example_menu)
    assert fake_wecom_api.state()["calls"] == {}


@pytest.mark.parametrize(
    "edit",
    [
        pytest.param(lambda m: None, id="doc-example"),
        pytest.param(lambda m: m.update(button=[_click()]), id="one-button"),
        pytest.param(lambda m: _top(m, 2).update(name="发送位置发x"), id="top-name-16-bytes"),
        pytest.param(lambda m: _sub(m, 1, 0).update(name="拍" * 13 + "x"), id="sub-name-40-bytes"),
        pytest.param(lambda m: _top(m, 2).update(key="k" * 128), id="key-128-bytes"),
        pytest.param(
            lambda m: _sub(m, 1, 3).update(url="https://example.com/" + "u" * 1004),
            id="url-1024-bytes",
        ),
        pytest.param(lambda m: _top(m, 1)["sub_button"].append(_click()), id="5-subs"),
        pytest.param(lambda m: _top(m, 0).update(sub_button=[_click()]), id="1-sub"),
        pytest.param(lambda m: _top(m, 2).update(extra="ignored"), id="unknown-field"),
    ],
)
def test_valid_menu_passes(example_menu: Menu, edit: Callable[[Menu], object]) -> None:
    """Menus at the documented limits pass."""
    edit(example_menu)
    validate_menu(example_menu)


def test_menu_not_an_object() -> None:
    """A menu that is not a JSON object is named as such."""
    with pytest.raises(MenuError, match=r"^menu: expected an object, got list"):
        validate_menu([_click()])  # type: ignore[arg-type]


def test_click_keys_are_those_of_event_buttons(example_menu: Menu) -> None:
    """Keys of click-like buttons count; view, mini program and parent buttons do not."""
    assert menu_click_keys(example_menu) == {
        "rselfmenu_0_0",
        "rselfmenu_0_1",
        "rselfmenu_1_0",
        "rselfmenu_1_1",
        "rselfmenu_1_2",
        "rselfmenu_2_0",
    }


def test_load_menu_json(example_menu: Menu) -> None:
    """load_menu returns the file's menu, validated."""
    assert load_menu(EXAMPLE_PATH) == example_menu
    assert load_menu(str(EXAMPLE_PATH)) == example_menu


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param('{"button": [', "not valid JSON", id="bad-json"),
        pytest.param('{"button": []}', "button: 0 buttons, expected 1-3", id="invalid-menu"),
        pytest.param("[]", "menu: expected an object, got list", id="not-an-object"),
    ],
)
def test_load_menu_errors_name_the_file(tmp_path: Path, text: str, message: str) -> None:
    """A file that does not parse or breaks a limit raises MenuError naming the file."""
    path = tmp_path / "menu.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(MenuError, match=f"^{re.escape(str(path))}: {re.escape(message)}"):
        load_menu(path)


@pytest.mark.parametrize("suffix", [".yaml", ".yml", ".YAML"])
def test_load_menu_yaml_without_pyyaml(
    tmp_path: Path, suffix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without PyYAML, a YAML menu raises ImportError saying what to install."""
    monkeypatch.setitem(sys.modules, "yaml", None)  # makes `import yaml` fail
    path = tmp_path / f"menu{suffix}"
    path.write_text("button: []\n", encoding="utf-8")
    with pytest.raises(ImportError, match=r"PyYAML \(pip install pyyaml\)"):
        load_menu(path)


def test_load_menu_yaml(tmp_path: Path, example_menu: Menu) -> None:
    """With PyYAML, a YAML menu loads like its JSON twin (JSON is YAML)."""
    path = tmp_path / "menu.yml"
    path.write_text(json.dumps(example_menu, ensure_ascii=False), encoding="utf-8")
    assert load_menu(path) == example_menu
