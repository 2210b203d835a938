"""The 5-second rule: deferred handlers, the deadline, and replies sent later with message/send.

The WeCom API is the fake server of tests/support/fake_wecom_api.py on 127.0.0.1.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from flask import Flask

from flask_wecom import TextReply, WeCom
from flask_wecom.messages import Message
from flask_wecom.testing import CallbackSigner, WeComTestClient
from harness.web_servers import GunicornServer
from tests.support.fake_wecom_api import (
    FAKE_AGENT_ID,
    FAKE_CORP_ID,
    FAKE_SECRET,
    FakeWeComAPI,
    FakeWeComAPIProcess,
    wecom_settings,
)
from tests.support.vectors import KEY, TOKEN


@pytest.fixture
def signer() -> CallbackSigner:
    return CallbackSigner(TOKEN, KEY, FAKE_CORP_ID)


@pytest.fixture
def make_app(fake_wecom_api: FakeWeComAPI) -> Callable[..., tuple[Flask, WeCom]]:
    def make(**config: Any) -> tuple[Flask, WeCom]:
        app = Flask(__name__)
        defaults = {
            **wecom_settings(fake_wecom_api.url),
            "WECOM_DEADLINE": 0.3,
        }
        app.config.update({**defaults, **config})
        return app, WeCom(app)

    return make


def test_deferred_handler_answers_empty_at_once_and_sends_later(
    make_app: Callable[..., tuple[Flask, WeCom]],
    signer: CallbackSigner,
    fake_wecom_api: FakeWeComAPI,
) -> None:
    app, wecom = make_app()
    runs: list[str] = []

    @wecom.message("text", deferred=True)
    def ask_llm(message: Message) -> str:
        runs.append(message.content or "")
        time.sleep(0.5)
        return f"thought about {message.content}"

    client = WeComTestClient(app, signer)
    request = signer.text("life", from_user="lisi")
    started = time.monotonic()
    response = client.send(request)
    assert time.monotonic() - started < 0.3
    assert (response.status, response.body) == (200, b"")
    # WeCom's retry of the same callback must not start the handler again.
    assert client.send(signer.callback(request.plaintext)).body == b""
    [sent] = fake_wecom_api.sent_messages(1)
    assert sent == {
        "touser": "lisi",
        "msgtype": "text",
        "text": {"content": "thought about life"},
        "agentid": FAKE_AGENT_ID,
    }
    assert runs == ["life"]


def test_slow_handler_past_the_deadline_goes_by_message_send(
    make_app: Callable[..., tuple[Flask, WeCom]],
    signer: CallbackSigner,
    fake_wecom_api: FakeWeComAPI,
) -> None:
    app, wecom = make_app()

    @wecom.message("text")
    def slow(message: Message) -> str:
        if message.content == "slow":
            time.sleep(0.6)
            return "late but here"
        return "fast"

    client = WeComTestClient(app, signer)
    assert client.send_text("fast").reply == TextReply("fast")
    started = time.monotonic()
    response = client.send_text("slow")
    elapsed = time.monotonic() - started
    assert (response.status, response.body) == (200, b"")
    assert 0.3 <= elapsed < 0.55
    [sent] = fake_wecom_api.sent_messages(1)
    assert sent["text"] == {"content": "late but here"}
    assert fake_wecom_api.state()["messages"] == [sent]  # the fast one went back passively


def test_background_errors_reach_the_error_handler(
    make_app: Callable[..., tuple[Flask, WeCom]],
    signer: CallbackSigner,
    fake_wecom_api: FakeWeComAPI,
) -> None:
    app, wecom = make_app()
    seen: list[Exception] = []

    @wecom.message("text", deferred=True)
    def broken(message: Message) -> str:
        raise ConnectionError("model server down")

    @wecom.errorhandler
    def apologise(message: Message, exc: Exception) -> str:
        seen.append(exc)
        return "Sorry, try again later."

    WeComTestClient(app, signer).send_text("hi")
    [sent] = fake_wecom_api.sent_messages(1)
    assert sent["text"] == {"content": "Sorry, try again later."}
    assert [str(e) for e in seen] == ["model server down"]


def test_missing_api_credentials_are_logged_not_raised(
    make_app: Callable[..., tuple[Flask, WeCom]],
    signer: CallbackSigner,
    caplog: pytest.LogCaptureFixture,
) -> None:
    app, wecom = make_app(WECOM_SECRET="")
    done = threading.Event()

    @wecom.message("text", deferred=True)
    def later(message: Message) -> str:
        done.set()
        return "never sent"

    with caplog.at_level(logging.ERROR, logger="flask_wecom"):
        assert WeComTestClient(app, signer).send_text("hi").status == 200
        assert done.wait(2)
        deadline = time.monotonic() + 2
        while "could not send the late reply" not in caplog.text and time.monotonic() < deadline:
            time.sleep(0.02)
    assert "WECOM_SECRET" in caplog.text
    assert FAKE_SECRET not in caplog.text


def test_deadline_zero_runs_inline(
    make_app: Callable[..., tuple[Flask, WeCom]], signer: CallbackSigner
) -> None:
    app, wecom = make_app(WECOM_DEADLINE=0)
    threads: list[str] = []
    wecom.message("text")(lambda m: threads.append(threading.current_thread().name) or "inline")
    assert WeComTestClient(app, signer).send_text("x").reply == TextReply("inline")
    assert threads == [threading.current_thread().name]


# -- under real gunicorn --


@pytest.fixture(scope="module")
def api_process() -> Iterator[FakeWeComAPIProcess]:
    with FakeWeComAPIProcess() as api:
        yield api


def test_deferred_flow_under_gunicorn(
    api_process: FakeWeComAPIProcess, redis_url: str, signer: CallbackSigner
) -> None:
    """Answered empty within the deadline; message/send arrives; the retry does not re-run it."""
    api_process.reset()
    env = {
        **wecom_settings(api_process.url),
        "WECOM_REDIS_URL": redis_url,
    }
    with (
        GunicornServer("tests.apps.deferred_app:app", env=env, workers=2) as server,
        requests.Session() as http,
    ):
        assert http.get(server.url(signer.verification("1").url("/wecom")), timeout=10).text == "1"
        request = signer.text("summarise the week", from_user="wangwu")
        started = time.monotonic()
        response = http.post(server.url(request.url("/wecom")), data=request.body, timeout=10)
        answered = time.monotonic() - started
        retry = signer.callback(request.plaintext)
        retry_response = http.post(server.url(retry.url("/wecom")), data=retry.body, timeout=10)
        [sent] = api_process.sent_messages(1, timeout=10)
    logging.getLogger(__name__).warning("deferred callback answered in %.1f ms", answered * 1000)
    assert (response.status_code, response.content) == (200, b"")
    assert (retry_response.status_code, retry_response.content) == (200, b"")
    assert answered < 1.0
    assert sent["touser"] == "wangwu"
    assert sent["text"]["content"] == "summary of: summarise the week"
    time.sleep(0.3)
    assert len(api_process.state()["messages"]) == 1  # the retry did not run it again
