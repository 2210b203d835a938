"""flask_wecom.compat: the official sample's (ret, value) API on the same vectors."""

from __future__ import annotations

import hashlib
import json
import xml.etree.ElementTree as ElementTree
from typing import Any

import pytest

from flask_wecom.compat import FormatException, WXBizJsonMsgCrypt, WXBizMsgCrypt
from flask_wecom.crypto import WeComCrypto
from tests.support.vectors import KEY, TOKEN, load, vector_params


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
    """The XML class gives bytes, the JSON class str, as the official ones do."""
    cls = sample_class(vector)
    wxcpt = cls(vector["token"], vector["encoding_aes_key"], vector["receive_id"])
    body = vector.get("post_data") or json.dumps({"encrypt": vector["encrypt"]})
    ret, plaintext = wxcpt.DecryptMsg(
        body, vector["msg_signature"], vector["timestamp"], vector["nonce"]
    )
    expected = vector["expected_plaintext"]
    assert (ret, plaintext) == (0, expected if cls is WXBizJsonMsgCrypt else expected.encode())


@pytest.mark.parametrize("vector", vector_params("negative"))
def test_negative_codes(vector: dict[str, Any]) -> None:
    wxcpt = WXBizJsonMsgCrypt(vector["token"], vector["encoding_aes_key"], vector["receive_id"])
    body = json.dumps({"encrypt": vector["encrypt"]})
    ret, value = wxcpt.DecryptMsg(
        body, vector["msg_signature"], vector["timestamp"], vector["nonce"]
    )
    assert (ret, value) == (vector["expected_error"], None)


def sha1_signature(*parts: str) -> str:
    """The msg_signature, computed here independently of flask_wecom."""
    return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()


def vector_of(kind: str, body_start: str = "") -> dict[str, Any]:
    """The official sample's vector (token hJqcu3uJ...) of ``kind`` whose body starts so."""
    (vector,) = (
        v
        for v in load("public")
        if v["kind"] == kind
        and v["token"].startswith("hJqcu3uJ")
        and (v.get("post_data") or "").lstrip().startswith(body_start)
    )
    return vector


#: The reply the official JSON sample encrypts (its plaintext is not valid JSON: kept as is).
SAMPLE_REPLY = (
    '{ "ToUserName": "wx5823bf96d3bd56c7", "FromUserName": :mycreate", "CreateTime": 1409659813, '
    '"MsgType": "text", "Content": "hello", "MsgId": 4561255354251345929, "AgentID": 218}'
)


def receive_the_sample_requests(
    cls: type[WXBizMsgCrypt], body_start: str, stamp_type: type
) -> tuple[Any, dict[str, Any], Any, str]:
    """Steps one and two of the official sample: VerifyURL, then DecryptMsg of its request.

    Returns the class instance, the request vector, its timestamp (as ``stamp_type``) and nonce.
    """
    check, request = vector_of("verify_url"), vector_of("decrypt", body_start)
    wxcpt = cls(request["token"], request["encoding_aes_key"], request["receive_id"])
    as_value: Any = str if cls is WXBizJsonMsgCrypt else str.encode  # str, or bytes
    ret, echo = wxcpt.VerifyURL(
        check["msg_signature"], stamp_type(check["timestamp"]), check["nonce"], check["echostr"]
    )
    assert (ret, echo) == (0, as_value(check["expected_plaintext"]))
    stamp, nonce = stamp_type(request["timestamp"]), request["nonce"]
    ret, message = wxcpt.DecryptMsg(request["post_data"], request["msg_signature"], stamp, nonce)
    assert (ret, message) == (0, as_value(request["expected_plaintext"]))
    return wxcpt, request, stamp, nonce


@pytest.mark.parametrize("stamp_type", [str, int], ids=["str-timestamps", "int-timestamps"])
def test_the_official_json_sample_flow(stamp_type: type) -> None:
    """callback_json_python3's Sample.py, step by step: values, types and the reply's layout."""
    wxcpt, request, stamp, nonce = receive_the_sample_requests(WXBizJsonMsgCrypt, "{", stamp_type)

    ret, reply = wxcpt.EncryptMsg(SAMPLE_REPLY, nonce, stamp)
    assert ret == 0 and isinstance(reply, str)
    fields = json.loads(reply)
    encrypt, signature = fields["encrypt"], fields["msgsignature"]
    assert reply == (
        "{\n"
        f'        "encrypt": "{encrypt}",\n'
        f'        "msgsignature": "{signature}",\n'
        f'        "timestamp": "{request["timestamp"]}",\n'
        f'        "nonce": "{nonce}"\n'
        "    }"
    )
    assert signature == sha1_signature(request["token"], request["timestamp"], nonce, encrypt)
    # The sample then decrypts its own reply with the reply's (string) timestamp.
    assert wxcpt.DecryptMsg(reply, signature, fields["timestamp"], fields["nonce"]) == (
        0,
        SAMPLE_REPLY,
    )


@pytest.mark.parametrize("stamp_type", [str, int], ids=["str-timestamps", "int-timestamps"])
def test_the_official_xml_sample_flow(stamp_type: type) -> None:
    """The same flow with WXBizMsgCrypt3.py's XML class: bytes out, the official XML reply."""
    wxcpt, request, stamp, nonce = receive_the_sample_requests(WXBizMsgCrypt, "<", stamp_type)

    answer = "<xml><Content><![CDATA[你好]]></Content></xml>"
    ret, reply = wxcpt.EncryptMsg(answer, nonce, stamp)
    assert ret == 0 and reply is not None
    root = ElementTree.fromstring(reply)  # noqa: S314 - our own reply
    encrypt, signature = root.findtext("Encrypt") or "", root.findtext("MsgSignature") or ""
    assert reply == (
        "<xml>\n"
        f"<Encrypt><![CDATA[{encrypt}]]></Encrypt>\n"
        f"<MsgSignature><![CDATA[{signature}]]></MsgSignature>\n"
        f"<TimeStamp>{request['timestamp']}</TimeStamp>\n"
        f"<Nonce><![CDATA[{nonce}]]></Nonce>\n"
        "</xml>"
    )
    assert signature == sha1_signature(request["token"], request["timestamp"], nonce, encrypt)
    assert wxcpt.DecryptMsg(
        reply, signature, root.findtext("TimeStamp") or "", root.findtext("Nonce") or ""
    ) == (0, answer.encode())


def test_the_json_class_reports_a_plaintext_that_is_not_utf8() -> None:
    """The official JSON class decodes the plaintext; a non-UTF-8 one is IllegalBuffer (-40008)."""
    request = vector_of("decrypt", "{")
    wxcpt = WXBizJsonMsgCrypt(request["token"], request["encoding_aes_key"], request["receive_id"])
    crypto = WeComCrypto(request["token"], request["encoding_aes_key"], request["receive_id"])
    encrypt = crypto.encrypt(b"\xff\xfe")
    body = json.dumps({"encrypt": encrypt})
    signature = sha1_signature(request["token"], "1", "n", encrypt)
    assert wxcpt.DecryptMsg(body, signature, "1", "n") == (-40008, None)


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
