"""Custom menu (自定义菜单) of a self-built app: the documented limits, checked locally.

WeCom answers a bad menu with a terse errcode (legacy 40015–40027, unconfirmed for
current WeCom), so :func:`validate_menu` checks the documented limits before any
request is sent and names the offending field::

    >>> validate_menu({"button": [{"type": "click", "name": "今日歌曲今日歌曲", "key": "V1"}]})
    Traceback (most recent call last):
    ...
    flask_wecom.errors.MenuError: button[0].name: 24 bytes, limit 16

A menu is the JSON body of ``menu/create``: ``{"button": [...]}`` with 1–3
top-level buttons, each either an action (``type`` plus ``key``, ``url`` or
``pagepath``/``appid``) or a parent ``{"name": ..., "sub_button": [1–5 actions]}``.
Lengths are counted in UTF-8 bytes, as WeCom counts them.

This module imports nothing from the package but :mod:`flask_wecom.errors`.
"""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .errors import MenuError

__all__ = [
    "BUTTON_TYPES",
    "EVENT_KEY_TYPES",
    "MAX_BUTTONS",
    "MAX_KEY_BYTES",
    "MAX_NAME_BYTES",
    "MAX_SUB_BUTTONS",
    "MAX_SUB_NAME_BYTES",
    "MAX_URL_BYTES",
    "load_menu",
    "menu_click_keys",
    "validate_menu",
]

#: Button types that send an event carrying the button's ``key`` (EventKey), so ``key``
#: is required: a plain click plus the scan, photo and location pickers.
EVENT_KEY_TYPES = frozenset(
    {
        "click",
        "scancode_push",
        "scancode_waitmsg",
        "pic_sysphoto",
        "pic_photo_or_album",
        "pic_weixin",
        "location_select",
    }
)
#: Every documented button type: the event types plus ``view`` (opens ``url``) and
#: ``view_miniprogram`` (opens ``pagepath`` of mini program ``appid``).
BUTTON_TYPES = EVENT_KEY_TYPES | {"view", "view_miniprogram"}

#: Top-level buttons in a menu (一级菜单): at least 1, at most this many.
MAX_BUTTONS = 3
#: Items under a parent button (二级菜单): at least 1, at most this many.
MAX_SUB_BUTTONS = 5
#: Longest ``name`` of a top-level button, in UTF-8 bytes.
MAX_NAME_BYTES = 16
#: Longest ``name`` of a sub-button, in UTF-8 bytes.
MAX_SUB_NAME_BYTES = 40
#: Longest ``key``, in UTF-8 bytes.
MAX_KEY_BYTES = 128
#: Longest ``url`` of a ``view`` button, in UTF-8 bytes (older docs said 256).
MAX_URL_BYTES = 1024


def validate_menu(menu: Mapping[str, Any]) -> None:
    """Check a menu against the documented limits (spec §6.2); return if it is valid.

    :param menu: the ``menu/create`` body, ``{"button": [...]}``.
    :raises MenuError: at the first defect, with a message that starts with the path
        of the offending field, e.g. ``button[1].sub_button[2].name: 41 bytes, limit 40``.
    """
    if not isinstance(menu, Mapping):
        raise MenuError(f"menu: expected an object, got {type(menu).__name__}")
    buttons = _items(menu, "button", "button", 1, MAX_BUTTONS)
    for index, button in enumerate(buttons):
        path = f"button[{index}]"
        if not isinstance(button, Mapping):
            raise MenuError(f"{path}: expected an object, got {type(button).__name__}")
        if "sub_button" not in button:
            _check_action(button, path, MAX_NAME_BYTES)
            continue
        _check_text(button, "name", path, MAX_NAME_BYTES)
        if "type" in button:
            raise MenuError(f"{path}.type: a parent with sub_button has no type")
        for sub_index, sub_button in enumerate(
            _items(button, "sub_button", f"{path}.sub_button", 1, MAX_SUB_BUTTONS)
        ):
            sub_path = f"{path}.sub_button[{sub_index}]"
            if not isinstance(sub_button, Mapping):
                raise MenuError(f"{sub_path}: expected an object, got {type(sub_button).__name__}")
            if "sub_button" in sub_button:
                raise MenuError(f"{sub_path}.sub_button: menus have two levels at most")
            _check_action(sub_button, sub_path, MAX_SUB_NAME_BYTES)


def menu_click_keys(menu: Mapping[str, Any]) -> set[str]:
    """Return the event keys (EventKey) of the buttons that send an event with their key.

    Parent buttons send no event themselves, so only their sub-buttons count. Use it to
    check that every key of a menu has a handler.

    :param menu: a menu that passes :func:`validate_menu`.
    """
    keys: set[str] = set()
    for button in menu["button"]:
        for action in button.get("sub_button", [button]):
            if action["type"] in EVENT_KEY_TYPES:
                keys.add(action["key"])
    return keys


def load_menu(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a menu from a JSON file, or a YAML file (``.yaml``/``.yml``), and validate it.

    :param path: the file to read, UTF-8 encoded.
    :raises MenuError: the file does not parse, or the menu breaks a documented limit;
        the message starts with the file name.
    :raises ImportError: the file is YAML and PyYAML is not installed.
    """
    file = Path(path)
    text = file.read_text(encoding="utf-8")
    if file.suffix.lower() in {".yaml", ".yml"}:
        try:
            yaml = importlib.import_module("yaml")
        except ImportError as error:
            raise ImportError(
                f"{file}: reading a YAML menu needs PyYAML (pip install pyyaml); "
                "or write the menu as JSON"
            ) from error
        try:
            menu = yaml.safe_load(text)
        except yaml.YAMLError as error:
            raise MenuError(f"{file}: not valid YAML: {error}") from error
    else:
        try:
            menu = json.loads(text)
        except ValueError as error:
            raise MenuError(f"{file}: not valid JSON: {error}") from error
    try:
        validate_menu(menu)
    except MenuError as error:
        raise MenuError(f"{file}: {error}") from error
    return dict(menu)


def _items(
    parent: Mapping[str, Any], field: str, path: str, least: int, most: int
) -> Sequence[Any]:
    """Return the list ``parent[field]`` after checking it holds ``least``–``most`` items."""
    items = parent.get(field)
    if not isinstance(items, Sequence) or isinstance(items, (str, bytes)):
        raise MenuError(f"{path}: expected a list of {least}-{most} buttons")
    if not least <= len(items) <= most:
        raise MenuError(f"{path}: {len(items)} buttons, expected {least}-{most}")
    return items


def _check_action(button: Mapping[str, Any], path: str, name_limit: int) -> None:
    """Check a button that does something when tapped: its name, type and type's fields."""
    _check_text(button, "name", path, name_limit)
    button_type = button.get("type")
    if button_type not in BUTTON_TYPES:
        raise MenuError(
            f"{path}.type: {button_type!r} is not one of {', '.join(sorted(BUTTON_TYPES))}"
        )
    if button_type in EVENT_KEY_TYPES:
        _check_text(button, "key", path, MAX_KEY_BYTES)
    elif button_type == "view":
        _check_text(button, "url", path, MAX_URL_BYTES)
    else:
        _check_text(button, "pagepath", path, None)
        _check_text(button, "appid", path, None)


def _check_text(button: Mapping[str, Any], field: str, path: str, byte_limit: int | None) -> None:
    """Check that ``button[field]`` is a non-empty string of at most ``byte_limit`` UTF-8 bytes."""
    value = button.get(field)
    if value is None or value == "":
        raise MenuError(f"{path}.{field}: required for this button")
    if not isinstance(value, str):
        raise MenuError(f"{path}.{field}: expected a string, got {type(value).__name__}")
    size = len(value.encode("utf-8"))
    if byte_limit is not None and size > byte_limit:
        raise MenuError(f"{path}.{field}: {size} bytes, limit {byte_limit}")
