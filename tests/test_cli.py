"""flask_wecom.cli: every subcommand, its exit codes and --json, and simulate over real HTTP.

``simulate`` runs against the example app under real gunicorn on 127.0.0.1, and against
small in-process servers (werkzeug's) that answer slowly or refuse, to check WeCom's
retry timing.
"""

from __future__ import annotations

import base64
import io
import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote

import click
import pytest
from werkzeug.serving import make_server

from flask_wecom.cli import main
from flask_wecom.crypto import WeComCrypto, signature
from flask_wecom.envelope import extract_encrypted
from flask_wecom.middleware import Endpoint, WeComMiddleware
from flask_wecom.replies import Reply, StreamReply, TextReply
from flask_wecom.testing import CallbackSigner
from harness.web_servers import GunicornServer, free_port
from tests.support.vectors import CORP_ID, KEY, TOKEN, load

ENV = {"WECOM_TOKEN": TOKEN, "WECOM_ENCODING_AES_KEY": KEY, "WECOM_CORP_ID": CORP_ID}
CREDENTIALS = ["--token", TOKEN, "--key", KEY, "--corp-id", CORP_ID]
STRONG_TOKEN = "Strong" + "0123456789" * 2 + "abcdef"
CONTACT_CHANGE = (
    "<xml><ToUserName><![CDATA[wx5823bf96d3bd56c7]]></ToUserName>"
    "<FromUserName><![CDATA[sys]]></FromUserName><CreateTime>1409659813</CreateTime>"
    "<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[change_contact]]></Event>"
    "<ChangeType><![CDATA[delete_user]]></ChangeType><UserID><![CDATA[lisi]]></UserID></xml>"
)

Run = Callable[..., tuple[int, str, str]]


@pytest.fixture(autouse=True)
def no_credentials_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str]) -> Run:
    """Run ``main(args)`` in-process; return (exit code, stdout, stderr)."""

    def run_cli(*args: str) -> tuple[int, str, str]:
        code = main(list(args))
        out, err = capsys.readouterr()
        return code, out, err

    return run_cli


# -- the program ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "code", "expected"),
    [
        pytest.param(["--help"], 0, "genkey", id="help"),
        pytest.param(["simulate", "--help"], 0, "WECOM_ENCODING_AES_KEY", id="subcommand-help"),
        pytest.param(["--version"], 0, "flask-wecom, version", id="version"),
        pytest.param([], 2, "Usage: flask-wecom", id="no-command"),
        pytest.param(["bogus"], 2, "No such command", id="unknown-command"),
        pytest.param(["genkey", "--bogus"], 2, "No such option", id="unknown-option"),
    ],
)
def test_program(run: Run, args: list[str], code: int, expected: str) -> None:
    status, out, err = run(*args)
    assert status == code
    assert expected in out + err


@pytest.mark.parametrize(
    "command",
    [
        pytest.param([sys.executable, "-m", "flask_wecom"], id="python-m"),
        pytest.param([str(Path(sys.executable).with_name("flask-wecom"))], id="console-script"),
    ],
)
def test_entry_points(command: list[str]) -> None:
    result = subprocess.run([*command, "--help"], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert "Usage: flask-wecom" in result.stdout
    failed = subprocess.run([*command, "bogus"], capture_output=True, text=True, check=False)
    assert failed.returncode == 2


# -- genkey -----------------------------------------------------------------------------------


def assert_fresh_key(key: str) -> None:
    assert len(key) == 43 and key.isalnum() and key.isascii()
    assert len(base64.b64decode(key + "=")) == 32


def test_genkey_prints_a_fresh_key(run: Run) -> None:
    outputs = [run("genkey") for _ in range(2)]
    keys = []
    for code, out, _ in outputs:
        assert code == 0
        name, value = out.strip().split("=", 1)
        assert name == "WECOM_ENCODING_AES_KEY"
        assert_fresh_key(value)
        keys.append(value)
    assert keys[0] != keys[1]


def test_genkey_with_token_and_json(run: Run) -> None:
    code, out, _ = run("genkey", "--token")
    lines = dict(line.split("=", 1) for line in out.splitlines())
    assert code == 0 and set(lines) == {"WECOM_TOKEN", "WECOM_ENCODING_AES_KEY"}
    assert len(lines["WECOM_TOKEN"]) == 32 and lines["WECOM_TOKEN"].isalnum()
    code, out, _ = run("genkey", "--token", "--json")
    document = json.loads(out)
    assert code == 0 and set(document) == {"token", "encoding_aes_key"}
    assert_fresh_key(document["encoding_aes_key"])
    assert document["token"] != lines["WECOM_TOKEN"]


# -- verify -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "code", "failed", "message"),
    [
        pytest.param([], 0, [], "Paste into the admin console", id="good"),
        pytest.param(["--url", "https://example.com/wecom"], 0, [], "example.com", id="url"),
        pytest.param(["--key", KEY[:-1]], 1, ["encoding_aes_key"], "43 characters", id="short"),
        pytest.param(
            ["--key", "+" + KEY[1:]], 0, [], "warn WECOM_ENCODING_AES_KEY holds '+'", id="key-plus"
        ),
        pytest.param(["--token", "a-b"], 1, ["token"], "only ASCII letters", id="token-dash"),
        pytest.param(["--token", "a" * 33], 1, ["token"], "at most 32", id="token-long"),
        pytest.param(["--token", "a" * 40], 1, ["token"], "got 40", id="token-40"),
        pytest.param(["--token", "a" * 32 + " "], 1, ["token"], "white space", id="token-space"),
        pytest.param(["--token", "my token!"], 1, ["token"], "only ASCII letters", id="token-bang"),
        pytest.param(["--token", "a"], 0, [], "warn WECOM_TOKEN has 1 characters", id="token-1"),
        pytest.param(["--token", "a" * 16], 0, [], "16 letters and digits", id="token-16"),
        pytest.param(["--corp-id", "ww1 "], 1, ["receive_id"], "white space", id="corp-id-space"),
        pytest.param(["--corp-id", ""], 0, [], "empty: an AI bot", id="corp-id-empty"),
        pytest.param(["--url", "ftp://example.com"], 1, ["url"], "http", id="bad-url"),
        pytest.param(["--url", "http://[::1/w"], 1, ["url"], "http", id="unclosed-bracket"),
    ],
)
def test_verify(run: Run, args: list[str], code: int, failed: list[str], message: str) -> None:
    strong = ["--token", STRONG_TOKEN, "--key", KEY, "--corp-id", CORP_ID]
    status, out, _ = run("verify", *strong, *args)
    assert status == code
    assert message in click.unstyle(out)
    status, out, _ = run("verify", *strong, *args, "--json")
    document = json.loads(out)
    assert status == code and document["ok"] is (code == 0)
    assert [check["name"] for check in document["checks"] if not check["ok"]] == failed
    warned = [w for check in document["checks"] for w in check["warnings"]]
    assert bool(warned) is ("warn" in message)


def test_verify_prints_secrets_only_when_asked(run: Run) -> None:
    _, out, _ = run("verify", *CREDENTIALS)
    assert KEY not in out and TOKEN not in out
    _, out, _ = run("verify", *CREDENTIALS, "--show-secrets")
    assert KEY in out and TOKEN in out
    _, out, _ = run("verify", *CREDENTIALS, "--json")
    assert json.loads(out)["console"] == {"url": None, "token": None, "encoding_aes_key": None}


def test_verify_reads_the_environment(run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    assert run("verify")[0] == 2  # --token and --key are required
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    code, out, _ = run("verify")
    assert code == 0 and CORP_ID in out


# -- decrypt ----------------------------------------------------------------------------------


def vector_query(vector: dict[str, Any]) -> str:
    query = f"msg_signature={vector['msg_signature']}&timestamp={vector['timestamp']}"
    query += f"&nonce={vector['nonce']}"
    if "echostr" in vector:
        query += "&echostr=" + quote(vector["echostr"], safe="")
    return query


def vector_args(vector: dict[str, Any], tmp_path: Path) -> list[str]:
    """decrypt's arguments for a published vector: its credentials, query and body."""
    args = ["--token", vector["token"], "--key", vector["encoding_aes_key"]]
    args += ["--corp-id", vector["receive_id"], "--query", vector_query(vector)]
    if vector["kind"] == "decrypt":
        body = tmp_path / "body"
        body.write_text(vector.get("post_data") or json.dumps({"encrypt": vector["encrypt"]}))
        args.append(str(body))
    return args


@pytest.mark.parametrize(
    "vector",
    [
        pytest.param(v, id=f"{name}{i}-{v['kind']}")
        for name in ("public", "aibot")
        for i, v in enumerate(load(name), 1)
    ],
)
def test_decrypt_published_vectors(run: Run, tmp_path: Path, vector: dict[str, Any]) -> None:
    code, out, err = run("decrypt", *vector_args(vector, tmp_path))
    assert code == 0, err
    assert out == vector["expected_plaintext"] + "\n"
    assert "signature ok" in err
    code, out, _ = run("decrypt", *vector_args(vector, tmp_path), "--json")
    document = json.loads(out)
    assert document["plaintext"] == vector["expected_plaintext"]
    assert document["signature_checked"] is True
    assert document["kind"] == {"verify_url": "verification", "decrypt": "callback"}[vector["kind"]]


@pytest.mark.parametrize(
    "vector", [pytest.param(v, id=f"negative{i}") for i, v in enumerate(load("negative"), 1)]
)
def test_decrypt_negative_vectors_fail(run: Run, tmp_path: Path, vector: dict[str, Any]) -> None:
    code, out, err = run("decrypt", *vector_args(vector, tmp_path))
    assert code == 1 and out == ""
    hint = {-40001: "msg_signature does not match", -40005: "receive id inside the ciphertext"}
    assert hint[int(vector["expected_error"])] in err


def write(tmp_path: Path, content: str | bytes) -> str:
    path = tmp_path / "captured"
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return str(path)


def test_decrypt_without_a_query_is_unchecked(run: Run, tmp_path: Path) -> None:
    request = CallbackSigner(TOKEN, KEY, CORP_ID).text("hi")
    code, out, err = run("decrypt", *CREDENTIALS, write(tmp_path, request.body))
    assert code == 0 and out == request.plaintext.decode() + "\n"
    assert "NOT checked" in err


@pytest.mark.parametrize("format", ["xml", "json"])
def test_decrypt_a_reply(run: Run, tmp_path: Path, format: Any) -> None:
    reply = WeComCrypto(TOKEN, KEY, CORP_ID).encrypt_message("<xml>r</xml>", "n1", format=format)
    code, out, _ = run("decrypt", *CREDENTIALS, write(tmp_path, reply), "--json")
    assert code == 0
    assert json.loads(out) == {
        "ok": True,
        "kind": "reply",
        "signature_checked": True,
        "plaintext": "<xml>r</xml>",
    }
    tampered = reply.replace("n1", "n2")
    code, out, err = run("decrypt", *CREDENTIALS, write(tmp_path, tampered))
    assert code == 1 and "signature does not match" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param([], "give a BODY_FILE", id="nothing-to-decrypt"),
        pytest.param(["--query", "timestamp=1&echostr=abc"], "needs msg_signature", id="query"),
        pytest.param(["--key", "short", "-"], "43 characters", id="malformed-key"),
    ],
)
def test_decrypt_usage_errors(run: Run, args: list[str], message: str) -> None:
    code, out, err = run("decrypt", *CREDENTIALS, *args)
    assert (code, out) == (2, "")
    assert message in err and "short" not in err  # a malformed key is not echoed


def test_decrypt_garbage_fails_cleanly(run: Run, tmp_path: Path) -> None:
    code, out, _ = run("decrypt", *CREDENTIALS, write(tmp_path, "not an envelope"), "--json")
    assert code == 1
    assert json.loads(out) == {
        "ok": False,
        "reason": "parse",
        "error": "the body is neither an XML nor a JSON envelope",
    }


# -- simulate against the example app under gunicorn ------------------------------------------


@pytest.fixture(scope="module")
def example_app() -> Iterator[GunicornServer]:
    with GunicornServer("example_app.app:app", env=ENV, workers=1) as server:
        yield server


def simulate_json(run: Run, url: str, *args: str) -> tuple[int, dict[str, Any]]:
    code, out, _ = run("simulate", url, *args, "--json")
    document: dict[str, Any] = json.loads(out)
    return code, document


def test_simulate_the_example_app(run: Run, example_app: GunicornServer) -> None:
    code, document = simulate_json(
        run,
        example_app.url("/wecom"),
        *CREDENTIALS,
        *("--text", "hi", "--click", "MENU_TODAY", "--subscribe"),
    )
    assert code == 0 and document["ok"] is True
    trips = document["round_trips"]
    assert [(t["label"], t["outcome"], t["status"]) for t in trips] == [
        ("URL verification", "ok", 200),
        ("text 'hi'", "ok", 200),
        ("click MENU_TODAY", "ok", 200),
        ("subscribe", "ok", 200),
    ]
    assert [t["detail"] for t in trips] == [
        "echo matches",
        repr(TextReply("echo: hi")),
        repr(TextReply("Today: stand-up at 10:00, release at 16:00.")),
        repr(TextReply("Welcome, zhangsan! Type help to start.")),
    ]
    assert "<Content><![CDATA[echo: hi]]></Content>" in trips[1]["reply"]
    summary = document["summary"]
    assert (summary["callbacks"], summary["sent"], summary["ok"], summary["refused"]) == (
        4,
        4,
        4,
        0,
    )
    assert 0 < summary["p50_ms"] <= summary["p99_ms"]


def test_simulate_prints_round_trips_and_a_summary(
    run: Run, example_app: GunicornServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    contact = tmp_path / "contact.xml"
    contact.write_text(CONTACT_CHANGE)
    code, out, _ = run(
        "simulate", example_app.url("/wecom"), "--text", "hi", "--file", str(contact)
    )
    assert code == 0
    assert "TextReply(content='echo: hi')" in out
    assert "file contact.xml" in out and "(empty reply)" in out
    assert "3 callbacks: sent 3, ok 3, refused 0, no answer 0, bad reply 0; p50" in out
    assert KEY not in out and TOKEN not in out


def test_simulate_with_a_wrong_token_is_refused(run: Run, example_app: GunicornServer) -> None:
    args = ["--token", "wrongtoken", "--key", KEY, "--corp-id", CORP_ID, "--text", "hi"]
    code, document = simulate_json(run, example_app.url("/wecom"), *args)
    assert code == 1 and document["ok"] is False
    for trip in document["round_trips"]:
        assert trip["outcome"] == "refused"
        assert [a["status"] for a in trip["attempts"]] == [403, 403, 403]  # WeCom's 3 sends
        assert "signature (-40001)" in trip["detail"]
    assert document["summary"]["refused"] == 2


def test_simulate_many_rounds_shows_progress(run: Run, example_app: GunicornServer) -> None:
    code, out, err = run(
        "simulate", example_app.url("/wecom"), *CREDENTIALS, "--no-verify", "--count", "25"
    )
    assert code == 0
    assert "sending" in err
    assert "25 callbacks: sent 25, ok 25" in out
    assert "echo: hello" not in out  # no line per round trip


# -- simulate: WeCom's retry timing, against in-process servers --------------------------------


class Recorder:
    """Outer WSGI layer that records each request's nonce and ciphertext."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.requests: list[tuple[str, str]] = []

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        query = parse_qs(environ["QUERY_STRING"])
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length)
        environ["wsgi.input"] = io.BytesIO(body)
        if body:
            self.requests.append((query["nonce"][0], extract_encrypted(body)))
        return self.app(environ, start_response)  # type: ignore[no-any-return]


class SlowFirstAnswer:
    """Echoes texts; the first time it sees a plaintext it takes ``delay`` seconds."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.seen: set[bytes] = set()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        message, plaintext = environ["wecom.message"], environ["wecom.plaintext"]
        if plaintext not in self.seen:
            self.seen.add(plaintext)
            time.sleep(self.delay)
        reply: Reply = (
            StreamReply(id="s1", content=f"echo: {message.content}", finish=True)
            if message.is_aibot
            else TextReply(f"echo: {message.content}")
        )
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [reply.render(message).encode()]


@pytest.fixture
def serve() -> Iterator[Callable[[Any], str]]:
    """Serve a WSGI app on 127.0.0.1 in a thread; returns its base URL."""
    servers = []

    def start(app: Any) -> str:
        server = make_server("127.0.0.1", 0, app, threaded=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_port}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def slow_app(delay: float) -> Recorder:
    return Recorder(
        WeComMiddleware(
            SlowFirstAnswer(delay),
            WeComCrypto(TOKEN, KEY, CORP_ID),
            endpoints=[Endpoint("/bot", WeComCrypto(TOKEN, KEY, ""), "json")],
            dedup=False,  # let every retry reach the handler
        )
    )


def test_simulate_resends_when_no_200_arrives_in_time(
    run: Run, serve: Callable[[Any], str]
) -> None:
    app = slow_app(delay=1.0)
    url = serve(app) + "/wecom"
    code, document = simulate_json(
        run, url, *CREDENTIALS, "--no-verify", "--text", "slow", "--timeout", "0.3"
    )
    assert code == 0
    (trip,) = document["round_trips"]
    assert [a["status"] for a in trip["attempts"]] == [None, 200]
    assert trip["attempts"][0]["error"] == "no answer within 0.3 s"
    assert 300 <= trip["attempts"][0]["ms"] < 1000
    assert trip["detail"] == repr(TextReply("echo: slow"))
    (first_nonce, first), (second_nonce, second) = app.requests
    crypto = WeComCrypto(TOKEN, KEY, CORP_ID)
    assert first_nonce != second_nonce and first != second
    assert crypto.decrypt(first) == crypto.decrypt(second)  # the same plaintext, resent


def test_simulate_without_retries_gives_up(run: Run, serve: Callable[[Any], str]) -> None:
    url = serve(slow_app(delay=0.6)) + "/wecom"
    code, document = simulate_json(
        run, url, *CREDENTIALS, "--no-verify", "--retries", "0", "--timeout", "0.2"
    )
    assert code == 1
    assert document["summary"] == {
        "callbacks": 1,
        "sent": 1,
        "ok": 0,
        "refused": 0,
        "no_answer": 1,
        "bad_reply": 0,
        "p50_ms": None,
        "p99_ms": None,
    }


def test_simulate_an_ai_bot(run: Run, serve: Callable[[Any], str]) -> None:
    url = serve(slow_app(delay=0)) + "/bot"
    args = ["--token", TOKEN, "--key", KEY, "--aibot", "--text", "hi"]
    code, document = simulate_json(run, url, *args)
    assert code == 0
    assert document["round_trips"][-1]["detail"] == repr(
        StreamReply(id="s1", content="echo: hi", finish=True)
    )


def test_simulate_nobody_listening(run: Run) -> None:
    url = f"http://127.0.0.1:{free_port()}/wecom"
    code, document = simulate_json(run, url, *CREDENTIALS, "--no-verify")
    assert code == 1
    (trip,) = document["round_trips"]
    assert trip["outcome"] == "no answer" and len(trip["attempts"]) == 3
    assert trip["detail"].startswith("connection failed")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(["ftp://127.0.0.1/wecom", *CREDENTIALS], "http://", id="url-scheme"),
        pytest.param(["http://127.0.0.1/w", "--token", "t"], "Missing option", id="no-key"),
        pytest.param(
            ["http://127.0.0.1/w", "--token", "t", "--key", "k"], "43 characters", id="bad-key"
        ),
        pytest.param(
            ["http://127.0.0.1/w", *CREDENTIALS, "--aibot", "--click", "K"],
            "AI bots",
            id="aibot-click",
        ),
        pytest.param(["http://127.0.0.1/w", *CREDENTIALS, "--count", "0"], "0", id="count"),
    ],
)
def test_simulate_usage_errors(run: Run, args: list[str], message: str) -> None:
    code, out, err = run("simulate", *args)
    assert code == 2 and message in err
    assert out == ""


def test_simulate_explains_a_missing_requests(run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "requests", None)
    code, _, err = run("simulate", "http://127.0.0.1:9/wecom", *CREDENTIALS, "--json")
    assert code == 1 and "pip install 'flask-wecom[client]'" in err


# -- hostile captured input: an exit code, never a traceback -----------------------------------

_CRYPTO = WeComCrypto(TOKEN, KEY, CORP_ID)
_DEEP_JSON = b'{"a":' * 60_000 + b"1" + b"}" * 60_000
_BOMB = (
    b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa">'
    b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;">]>'
    b"<xml><Encrypt>&c;</Encrypt></xml>"
)


def _non_utf8_echo_query() -> str:
    """A correctly signed URL check whose echostr decrypts to bytes that are not UTF-8."""
    echostr = _CRYPTO.encrypt(b"\xff\xfe\xfd")
    timestamp = str(int(time.time()))
    sig = signature(TOKEN, timestamp, "n", echostr)
    return f"msg_signature={sig}&timestamp={timestamp}&nonce=n&echostr={quote(echostr, safe='')}"


HOSTILE_DECRYPT = [
    pytest.param([], _DEEP_JSON, 1, id="deeply-nested-json"),
    pytest.param([], b"[" * 200_000, 1, id="deeply-nested-array"),
    pytest.param([], b'{"msgsignature": "s", "x": ' + _DEEP_JSON + b"}", 1, id="deep-json-reply"),
    pytest.param([], b"<a>" * 5_000 + b"</a>" * 5_000, 1, id="deeply-nested-xml"),
    pytest.param([], _BOMB, 1, id="entity-bomb"),
    pytest.param(
        [], "<!DOCTYPE x><xml><Encrypt>C</Encrypt></xml>".encode("utf-16"), 1, id="utf16-doctype"
    ),
    pytest.param([], b"\xff\xfe\x00<\x00x\x00", 1, id="bad-utf16"),
    pytest.param([], b'{"encrypt": "\xff\xfe"}', 1, id="json-bad-utf8"),
    pytest.param([], b"<xml><Encrypt>\x00\x01</Encrypt></xml>", 1, id="nul-in-xml"),
    pytest.param([], b"<xml><Encrypt>" + b"A" * 3_000_000 + b"</Encrypt></xml>", 1, id="3-mb"),
    pytest.param([], b'{"encrypt": "!!!", "msgsignature": "s"}', 1, id="reply-not-base64"),
    pytest.param([], b'{"encrypt": "QUJD"}', 1, id="ciphertext-too-short"),
    pytest.param([], b"\x00" * 64, 1, id="nul-bytes"),
    pytest.param(
        ["--query", "msg_signature=a&msg_signature=b&timestamp=1&nonce=n"],
        b"x",
        2,
        id="repeated-parameter",
    ),
    pytest.param(
        ["--query", "msg_signature=%ZZ&timestamp=%&nonce=&echostr=%FF%FE"],
        b"",
        1,
        id="bad-percent-escapes",
    ),
    pytest.param(
        ["--query", "msg_signature=0&timestamp=" + "9" * 5000 + "&nonce=n&echostr=e"],
        b"",
        1,
        id="huge-timestamp",
    ),
    pytest.param(["--query", "?&&=&=="], b"", 2, id="empty-pairs"),
    pytest.param(["--query", _non_utf8_echo_query()], b"", 1, id="echo-not-utf8"),
]


@pytest.mark.parametrize(("args", "body", "code"), HOSTILE_DECRYPT)
def test_decrypt_hostile_input_never_gives_a_traceback(
    run: Run, monkeypatch: pytest.MonkeyPatch, args: list[str], body: bytes, code: int
) -> None:
    for output in ([], ["--json"]):
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(body)))
        status, out, err = run("decrypt", *CREDENTIALS, *args, *output, "-")
        assert status == code, err
        assert "Traceback" not in err
        if code == 1 and output:
            assert json.loads(out)["ok"] is False


def test_decrypt_deep_json_from_a_pipe_exits_cleanly() -> None:
    """The reported crash, end to end: a RecursionError traceback on deeply nested JSON."""
    result = subprocess.run(
        [sys.executable, "-m", "flask_wecom", "decrypt", *CREDENTIALS, "-"],
        input=_DEEP_JSON,
        capture_output=True,
        check=False,
        timeout=60,
    )
    assert (result.returncode, result.stdout) == (1, b"")
    assert result.stderr.startswith(b"error: malformed JSON envelope")


def answer_with(body: bytes) -> Callable[..., Iterable[bytes]]:
    """A WSGI app that answers every request 200 with ``body``."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return [body]

    return app


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(_DEEP_JSON, id="deeply-nested-json"),
        pytest.param(b'{"msgsignature": "s", "x": ' + _DEEP_JSON + b"}", id="deep-json-reply"),
        pytest.param(b'{"encrypt": "\xff", "msgsignature": "s"}', id="bad-utf8"),
        pytest.param(_BOMB, id="entity-bomb"),
        pytest.param(b"<a>" * 5_000 + b"</a>" * 5_000, id="deeply-nested-xml"),
        pytest.param(b'{"encrypt": "!!!", "msgsignature": "s"}', id="reply-not-base64"),
        pytest.param(b"\x00\xff" * 1000, id="binary"),
    ],
)
def test_simulate_hostile_answers_are_bad_replies(
    run: Run, serve: Callable[[Any], str], answer: bytes
) -> None:
    code, document = simulate_json(run, serve(answer_with(answer)) + "/w", *CREDENTIALS)
    assert code == 1
    assert [trip["outcome"] for trip in document["round_trips"]] == ["bad reply", "bad reply"]


def test_simulate_malformed_url_is_a_usage_error(run: Run) -> None:
    code, out, err = run("simulate", "http://[::1/w", *CREDENTIALS)
    assert (code, out) == (2, "") and "http://" in err
