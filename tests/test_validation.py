"""The shared credential validator: what it refuses, what it warns about, what its errors say."""

from __future__ import annotations

from typing import Any

import pytest

from flask_wecom.errors import WeComError
from flask_wecom.validation import (
    ConfigError,
    check_credentials,
    check_encoding_aes_key,
    check_receive_id,
    check_token,
)

KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
TOKEN = "T" * 32
CORP_ID = "ww0123456789abcdef"


@pytest.mark.parametrize(
    ("value", "warned"),
    [
        pytest.param("a", True, id="one-character"),
        pytest.param("a" * 15, True, id="15-characters"),
        pytest.param("a" * 16, False, id="16-characters"),
        pytest.param("Ab1" * 10 + "xy", False, id="32-characters"),
    ],
)
def test_token_accepted(value: str, warned: bool) -> None:
    warnings = check_token(value, "WECOM_SALES_TOKEN")
    assert len(warnings) == int(warned)
    if warned:
        assert warnings[0].startswith(f"WECOM_SALES_TOKEN has {len(value)} characters")
        assert "genkey --token" in warnings[0]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        pytest.param("", "must not be empty", id="empty"),
        pytest.param("a" * 33, "must be at most 32 characters, got 33", id="33-characters"),
        pytest.param("mytoken ", "white space around it", id="trailing-space"),
        pytest.param("\tmytoken", "white space around it", id="leading-tab"),
        pytest.param("my token", "only ASCII letters and digits", id="inner-space"),
        pytest.param("my-token!", "only ASCII letters and digits", id="punctuation"),
        pytest.param("令牌abc", "only ASCII letters and digits", id="non-ascii"),
        pytest.param("１２３", "only ASCII letters and digits", id="fullwidth-digits"),
        pytest.param(None, "must be a string, got NoneType", id="none"),
        pytest.param(b"token", "must be a string, got bytes", id="bytes"),
    ],
)
def test_token_refused(value: Any, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        check_token(value)
    assert str(caught.value).startswith("WECOM_TOKEN ")
    assert message in str(caught.value)
    assert "(接收消息服务器配置 > Token)" in str(caught.value)
    assert caught.value.key == "WECOM_TOKEN"


def test_config_error_is_a_wecom_error_and_a_value_error() -> None:
    assert issubclass(ConfigError, WeComError) and issubclass(ConfigError, ValueError)


@pytest.mark.parametrize(
    ("value", "warned"),
    [
        pytest.param(KEY, False, id="letters-and-digits"),
        pytest.param("+/" + KEY[2:], True, id="plus-and-slash"),
    ],
)
def test_key_accepted(value: str, warned: bool) -> None:
    warnings = check_encoding_aes_key(value)
    assert len(warnings) == int(warned)
    if warned:
        assert warnings[0].startswith("WECOM_ENCODING_AES_KEY holds '+' or '/'")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        pytest.param(KEY[:42], "must be 43 characters, got 42", id="42-characters"),
        pytest.param(KEY + "A", "must be 43 characters, got 44", id="44-characters"),
        pytest.param(KEY + "=", "must be 43 characters, got 44", id="base64-padding"),
        pytest.param("", "must be 43 characters, got 0", id="empty"),
        pytest.param(KEY[:42] + "-", "only A-Z, a-z, 0-9, '+' and '/'", id="urlsafe-dash"),
        pytest.param(KEY[:42] + "é", "only A-Z, a-z, 0-9, '+' and '/'", id="non-ascii"),
        pytest.param(KEY[:42] + " ", "white space around it", id="trailing-space"),
        pytest.param(43, "must be a string, got int", id="int"),
    ],
)
def test_key_refused(value: Any, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        check_encoding_aes_key(value, "WECOM_AIBOT_ENCODING_AES_KEY")
    assert str(caught.value).startswith("WECOM_AIBOT_ENCODING_AES_KEY ")
    assert message in str(caught.value)
    assert "接收消息服务器配置" in str(caught.value)


@pytest.mark.parametrize(
    ("value", "required"),
    [
        pytest.param(CORP_ID, True, id="corp-id"),
        pytest.param(f"{CORP_ID},wx1234", True, id="comma-list"),
        pytest.param(f"{CORP_ID}, wx1234", True, id="comma-and-space"),
        pytest.param([CORP_ID, "wx1234"], True, id="list"),
        pytest.param("", False, id="aibot-empty"),
        pytest.param([""], False, id="aibot-empty-in-list"),
    ],
)
def test_receive_id_accepted(value: Any, required: bool) -> None:
    assert check_receive_id(value, required=required) == []


@pytest.mark.parametrize(
    ("value", "required", "message"),
    [
        pytest.param("", True, "must not be empty for a self-built app", id="empty-app"),
        pytest.param([""], True, "must not be empty for a self-built app", id="empty-in-list"),
        pytest.param(f"{CORP_ID},", True, "must not be empty", id="trailing-comma"),
        pytest.param(f"{CORP_ID} ", False, "white space around it", id="trailing-space"),
        pytest.param(f" {CORP_ID}", True, "white space around it", id="leading-space"),
        pytest.param("ww01 23", True, "white space in the id", id="inner-space"),
        pytest.param([f"{CORP_ID}\n"], True, "white space in the id", id="newline-in-list"),
        pytest.param([CORP_ID, 7], True, "holds 7, not a string", id="int-in-list"),
        pytest.param("ww\x00", False, "control character", id="nul"),
        pytest.param("ww\udcff", False, "undecodable byte", id="surrogate-escape"),
        pytest.param([], False, "must be a string or a list of strings", id="empty-list"),
        pytest.param(None, False, "must be a string or a list of strings", id="none"),
    ],
)
def test_receive_id_refused(value: Any, required: bool, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        check_receive_id(value, required=required)
    assert str(caught.value).startswith("WECOM_CORP_ID ")
    assert message in str(caught.value)
    assert "企业ID" in str(caught.value)


def test_credentials_gathers_the_warnings_of_each_check() -> None:
    settings = {
        "WECOM_SALES_TOKEN": "short",
        "WECOM_SALES_ENCODING_AES_KEY": "/" + KEY[1:],
        "WECOM_SALES_CORP_ID": CORP_ID,
    }
    warnings = check_credentials(settings, "WECOM_SALES_")
    assert [w.split()[0] for w in warnings] == [
        "WECOM_SALES_TOKEN",
        "WECOM_SALES_ENCODING_AES_KEY",
    ]
    strong = {**settings, "WECOM_SALES_TOKEN": TOKEN, "WECOM_SALES_ENCODING_AES_KEY": KEY}
    assert check_credentials(strong, "WECOM_SALES_") == []


@pytest.mark.parametrize(
    ("settings", "required", "key", "message"),
    [
        pytest.param({}, True, "WECOM_TOKEN, WECOM_ENCODING_AES_KEY", "must be set", id="none-set"),
        pytest.param(
            {"WECOM_TOKEN": TOKEN, "WECOM_ENCODING_AES_KEY": ""},
            True,
            "WECOM_ENCODING_AES_KEY",
            "must be set",
            id="empty-key",
        ),
        pytest.param(
            {"WECOM_TOKEN": TOKEN, "WECOM_ENCODING_AES_KEY": KEY},
            True,
            "WECOM_CORP_ID",
            "must not be empty",
            id="app-without-corp-id",
        ),
        pytest.param(
            {"WECOM_TOKEN": TOKEN + " ", "WECOM_ENCODING_AES_KEY": KEY, "WECOM_CORP_ID": CORP_ID},
            True,
            "WECOM_TOKEN",
            "white space",
            id="token-trailing-space",
        ),
        pytest.param(
            {"WECOM_TOKEN": TOKEN, "WECOM_ENCODING_AES_KEY": KEY[1:], "WECOM_CORP_ID": ""},
            False,
            "WECOM_ENCODING_AES_KEY",
            "got 42",
            id="short-key",
        ),
    ],
)
def test_credentials_refused(
    settings: dict[str, Any], required: bool, key: str, message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        check_credentials(settings, receive_id_required=required)
    assert caught.value.key == key
    assert message in str(caught.value)


def test_credentials_of_an_aibot_need_no_receive_id() -> None:
    settings = {"WECOM_AIBOT_TOKEN": TOKEN, "WECOM_AIBOT_ENCODING_AES_KEY": KEY}
    assert check_credentials(settings, "WECOM_AIBOT_", receive_id_required=False) == []


def test_errors_never_hold_the_secret_values() -> None:
    secret_token = "Secret" + "x" * 27  # 33 characters
    with pytest.raises(ConfigError) as caught:
        check_token(secret_token)
    assert secret_token not in str(caught.value)
    with pytest.raises(ConfigError) as caught:
        check_encoding_aes_key(KEY[:42] + "!")
    assert KEY[:42] not in str(caught.value)
