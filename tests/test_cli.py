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

import pytest
from werkzeug.serving import make_server

from flask_wecom.cli import main
from flask_wecom.crypto import WeComCrypto
from flask_wecom.envelope import extract_encrypted
from flask_wecom.middleware import Endpoint, WeComMiddleware
from flask_wecom.replies import Reply, StreamReply, TextReply
from flask_wecom.testing import CallbackSigner
from tests.support.gunicorn import GunicornServer, free_port
from tests.test_crypto import CORP_ID, KEY, TOKEN, load

ENV = {"WECOM_TOKEN": TOKEN, "WECOM_ENCODING_AES_KEY": KEY, "WECOM_CORP_ID": CORP_ID}
CREDENTIALS = ["--token", TOKEN, "--key", KEY, "--corp-id", CORP_ID]
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
            ["--key", "+" + KEY[1:]], 1, ["encoding_aes_key"], "letters and digits", id="key-plus"
        ),
        pytest.param(["--token", "a-b"], 1, ["token"], "1 to 32 letters", id="token-dash"),
        pytest.param(["--token", "a" * 33], 1, ["token"], "1 to 32 letters", id="token-long"),
        pytest.param(["--url", "ftp://example.com"], 1, ["url"], "http", id="bad-url"),
    ],
)
def test_verify(run: Run, args: list[str], code: int, failed: list[str], message: str) -> None:
    status, out, _ = run("verify", *CREDENTIALS, *args)
    assert status == code
    assert message in out
    status, out, _ = run("verify", *CREDENTIALS, *args, "--json")
    document = json.loads(out)
    assert status == code and document["ok"] is (code == 0)
    assert [check["name"] for check in document["checks"] if not check["ok"]] == failed


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
    hint = {-40001: "signature does not match", -40005: "another receive id"}
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
