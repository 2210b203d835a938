"""End to end: the example app under real gunicorn on 127.0.0.1, driven over real HTTP."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import requests

from flask_wecom import StreamReply
from flask_wecom.testing import CallbackSigner, SignedRequest, aibot_payload
from harness.redis_server import RedisServer
from harness.web_servers import GunicornServer
from tests.support.vectors import CORP_ID, KEY, TOKEN

pytestmark = pytest.mark.slow

ENV = {
    "WECOM_TOKEN": TOKEN,
    "WECOM_ENCODING_AES_KEY": KEY,
    "WECOM_CORP_ID": CORP_ID,
    "WECOM_AIBOT_TOKEN": "botToken2024abcdef",
    "WECOM_AIBOT_ENCODING_AES_KEY": KEY,
}


@pytest.fixture(scope="module")
def server(redis_server: RedisServer) -> Iterator[GunicornServer]:
    """Two workers sharing Redis, as in production (streams must survive a worker hop)."""
    env = {**ENV, "WECOM_REDIS_URL": redis_server.url}
    with GunicornServer("example_app.app:app", env=env, workers=2) as running:
        yield running


@pytest.fixture
def signer() -> CallbackSigner:
    return CallbackSigner(TOKEN, KEY, CORP_ID)


def post(server: GunicornServer, request: SignedRequest, path: str = "/wecom") -> requests.Response:
    return requests.request(
        request.method,
        server.url(request.url(path)),
        data=request.body,
        headers={"Content-Type": request.content_type} if request.content_type else {},
        timeout=10,
    )


def test_url_verification(server: GunicornServer, signer: CallbackSigner) -> None:
    response = post(server, signer.verification("4611686018427387904"))
    assert (response.status_code, response.content) == (200, b"4611686018427387904")


@pytest.mark.parametrize(
    ("build", "expected"),
    [
        pytest.param(lambda s: s.text("你好"), "echo: 你好", id="text-echo"),
        pytest.param(
            lambda s: s.text("HELP"), "Send any text and I echo it. Try the menu below.", id="help"
        ),
        pytest.param(
            lambda s: s.click("MENU_VOTE_PIZZA"),
            "Thanks, your vote for pizza is counted.",
            id="vote",
        ),
        pytest.param(
            lambda s: s.subscribe(), "Welcome, zhangsan! Type help to start.", id="welcome"
        ),
    ],
)
def test_replies(
    server: GunicornServer, signer: CallbackSigner, build: object, expected: str
) -> None:
    request = build(signer)  # type: ignore[operator]
    response = post(server, request)
    assert response.status_code == 200
    reply = signer.open_reply(response.content, request)
    assert reply is not None and reply.content == expected  # type: ignore[attr-defined]


def test_contact_change_is_an_empty_200(server: GunicornServer, signer: CallbackSigner) -> None:
    response = post(server, signer.change_contact("delete_user", {"UserID": "lisi"}))
    assert (response.status_code, response.content) == (200, b"")


def test_forged_callback_is_403_and_nothing_secret_is_logged(
    server: GunicornServer, signer: CallbackSigner
) -> None:
    response = post(server, signer.text("top secret", signature="0" * 40))
    assert response.status_code == 403
    log = server.log()
    assert "refused POST wecom" in log
    assert "top secret" not in log and KEY not in log


def test_example_bot_streams_its_answer(server: GunicornServer) -> None:
    """The example app's AI bot answers with a stream id, then the growing content."""
    bot = CallbackSigner("botToken2024abcdef", KEY, "", format="json")
    first = bot.aibot_text("why")
    opened = bot.open_reply(post(server, first, "/aibot").content, first)
    assert isinstance(opened, StreamReply) and not opened.finish
    deadline = time.monotonic() + 10
    reply = opened
    while not reply.finish and time.monotonic() < deadline:
        time.sleep(0.1)
        poll = bot.callback(
            aibot_payload("stream", {"stream": {"id": opened.id}}, msgid=f"p{time.monotonic_ns()}")
        )
        answer = bot.open_reply(post(server, poll, "/aibot").content, poll)
        assert isinstance(answer, StreamReply)
        reply = answer
    assert reply.finish
    assert reply.content == "You asked: why. Here is my answer. "
