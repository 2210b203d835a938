"""flask_wecom.compat: the official sample's (ret, value) API on the same vectors."""

from __future__ import annotations

import json
from typing import Any

import pytest

from flask_wecom.compat import FormatException, WXBizJsonMsgCrypt, WXBizMsgCrypt
from tests.test_crypto import KEY, TOKEN, load, vector_params


def sample_class(vector: dict[str, Any]) -> type[WXBizMsgCrypt]:
    """The sample class a vector's body needs: JSON bodies go to WXBizJsonMsgCrypt."""
    body = vector.get("post_data") or "{"
    return WXBizJsonMsgCrypt if body.lstrip().startswith("{") else WXBizMsgCrypt


@pytest.mark.parametrize("vector", vector_params("public", "aibot", kind="verify_url"))
def test_verify_url(vector: dict[str, Any]) -> None:
    wxcpt = WXBizMsgCrypt(vector["token"], vector["encoding_aes_key"], vector["receive_id"])
    ret, echo = wxcpt.VerifyURL(
        vector["msg_signature"], vector["timestamp"], vector["nonce"], vector["echostr"]
    )
    assert (ret, echo) == (0, vector["expected_plaintext"].encode())


@pytest.mark.parametrize("vector", vector_params("public", "aibot", kind="decrypt"))
def test_decrypt_msg(vector: dict[str, Any]) -> None:
    wxcpt = sample_class(vector)(vector["token"], vector["encoding_aes_key"], vector["receive_id"])
    body = vector.get("post_data") or json.dumps({"encrypt": vector["encrypt"]})
    ret, plaintext = wxcpt.DecryptMsg(
        body, vector["msg_signature"], vector["timestamp"], vector["nonce"]
    )
    assert (ret, plaintext) == (0, vector["expected_plaintext"].encode())


@pytest.mark.parametrize("vector", vector_params("negative"))
def test_negative_codes(vector: dict[str, Any]) -> None:
    wxcpt = WXBizJsonMsgCrypt(vector["token"], vector["encoding_aes_key"], vector["receive_id"])
    body = json.dumps({"encrypt": vector["encrypt"]})
    ret, value = wxcpt.DecryptMsg(
        body, vector["msg_signature"], vector["timestamp"], vector["nonce"]
    )
    assert (ret, value) == (vector["expected_error"], None)


@pytest.mark.parametrize(
    ("cls", "marker"),
    [
        pytest.param(WXBizMsgCrypt, "<MsgSignature><![CDATA[", id="xml"),
        pytest.param(WXBizJsonMsgCrypt, '"msgsignature":', id="json"),
    ],
)
def test_encrypt_then_decrypt(cls: type[WXBizMsgCrypt], marker: str) -> None:
    wxcpt = cls(TOKEN, KEY, "wx5823bf96d3bd56c7")
    ret, envelope = wxcpt.EncryptMsg("<xml>你好</xml>", "1372623149", "1409659813")
    assert ret == 0 and envelope is not None and marker in envelope
    if cls is WXBizJsonMsgCrypt:
        signature = json.loads(envelope)["msgsignature"]
    else:
        signature = envelope.split("<MsgSignature><![CDATA[")[1].split("]]>")[0]
    assert wxcpt.DecryptMsg(envelope, signature, "1409659813", "1372623149") == (
        0,
        "<xml>你好</xml>".encode(),
    )


@pytest.mark.parametrize(
    ("call", "code"),
    [
        pytest.param(lambda w: w.VerifyURL("0" * 40, "1", "n", "abc"), -40001, id="verify-bad-sig"),
        pytest.param(
            lambda w: w.DecryptMsg("<xml>", "0" * 40, "1", "n"), -40002, id="decrypt-bad-xml"
        ),
        pytest.param(lambda w: w.EncryptMsg("x", "\x01"), None, id="encrypt-bad-nonce-raises"),
    ],
)
def test_error_codes(call: Any, code: int | None) -> None:
    wxcpt = WXBizMsgCrypt(TOKEN, KEY, "wx5823bf96d3bd56c7")
    if code is None:
        with pytest.raises(ValueError):
            call(wxcpt)
    else:
        assert call(wxcpt) == (code, None)


def test_bad_key_raises_format_exception() -> None:
    with pytest.raises(FormatException) as caught:
        WXBizMsgCrypt(TOKEN, KEY[:-2], "x")
    assert caught.value.code == -40004


def test_vectors_are_all_covered() -> None:
    """The published files hold the 8 public, 3 negative and 2 AI-bot vectors used above."""
    assert (len(load("public")), len(load("negative")), len(load("aibot"))) == (8, 3, 2)
