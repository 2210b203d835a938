"""The FastAPI example under real uvicorn: 2 workers sharing a real Redis.

URL verification, a text and a menu click, retries answered once across workers, an AI-bot
stream whose refreshes land on both workers, and attacks that must get no 5xx and leave no
plaintext or secret in the log.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace

import pytest
import requests

from flask_wecom.envelope import extract_encrypted
from flask_wecom.replies import StreamReply, TextReply
from flask_wecom.testing import CallbackSigner, SignedRequest, WeComTestClient, aibot_payload
from harness.forge import CORP_ID, KEY, MARKER, TOKEN
from harness.redis_server import RedisServer
from harness.web_servers import UvicornServer

pytestmark = pytest.mark.slow

ENV = {
    "WECOM_TOKEN": TOKEN,
    "WECOM_ENCODING_AES_KEY": KEY,
    "WECOM_CORP_ID": CORP_ID,
    "WECOM_AIBOT_TOKEN": TOKEN,
    "WECOM_AIBOT_ENCODING_AES_KEY": KEY,
}


@pytest.fixture(scope="module")
def server(redis_server: RedisServer) -> Iterator[UvicornServer]:
    redis_server.start()
    with UvicornServer(
        "tests.apps.asgi_app:app", env={**ENV, "WECOM_REDIS_URL": redis_server.url}, workers=2
    ) as uvicorn:
        yield uvicorn


@pytest.fixture
def signer() -> CallbackSigner:
    return CallbackSigner(TOKEN, KEY, CORP_ID)


def post(server: UvicornServer, request: SignedRequest, path: str = "/wecom") -> requests.Response:
    return requests.post(server.url(request.url(path)), data=request.body, timeout=10)


def test_the_test_kit_against_the_live_server(
    server: UvicornServer, signer: CallbackSigner
) -> None:
    client = WeComTestClient(server.url(""), signer)
    assert client.verify_url("1288432023552776189").body == b"1288432023552776189"
    assert client.send_text("hello").reply == TextReply("echo: hello")
    assert client.click("MENU_TODAY").reply == TextReply(
        "Today: stand-up at 10:00, release at 16:00."
    )
    assert requests.get(server.url("/health"), timeout=10).json() == {"status": "ok"}


def test_retries_are_answered_once_across_workers(
    server: UvicornServer, signer: CallbackSigner
) -> None:
    first = signer.text("once")
    answers = [post(server, first)] + [post(server, signer.resend(first)) for _ in range(5)]
    assert {a.status_code for a in answers} == {200}
    assert len({extract_encrypted(a.content) for a in answers}) == 1


def test_a_stream_refreshed_on_both_workers(server: UvicornServer) -> None:
    bot = CallbackSigner(TOKEN, KEY, "", format="json")
    first_request = bot.aibot_text("weather")
    first = bot.open_reply(post(server, first_request, "/aibot").content, first_request)
    assert isinstance(first, StreamReply) and not first.finish
    pids, contents = set(), []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        refresh = bot.callback(
            aibot_payload("stream", {"stream": {"id": first.id}}, msgid=f"r{len(contents)}")
        )
        with requests.Session() as fresh:  # a new connection each time, so both workers serve
            response = fresh.post(server.url(refresh.url("/aibot")), data=refresh.body, timeout=10)
        pids.add(response.headers["x-worker-pid"])
        reply = bot.open_reply(response.content, refresh)
        assert isinstance(reply, StreamReply)
        contents.append(reply.content)
        if reply.finish and len(pids) > 1:
            break
        time.sleep(0.05)
    assert contents[-1] == "You asked: weather. Here is my answer. "
    assert all(contents[-1].startswith(c) for c in contents)  # cumulative on every worker
    assert len(pids) == 2


ATTACKS = [
    pytest.param(lambda s: s.text(MARKER, signature="0" * 40), 403, id="bad-signature"),
    pytest.param(lambda s: s.text(MARKER, timestamp=1), 403, id="stale"),
    pytest.param(lambda s: s.text(MARKER, receive_id="ww-other"), 400, id="other-receive-id"),
    pytest.param(lambda s: replace(s.text(MARKER), body=b"x" * 300_000), 413, id="over-cap"),
    pytest.param(lambda s: s.callback(b"<xml><a>" * 50 + MARKER.encode()), 400, id="not-xml"),
    pytest.param(
        lambda s: replace(
            s.text(MARKER),
            method="GET",
            query_string=s.text(MARKER).query_string,
        ),
        400,
        id="get-without-echostr",
    ),
]


@pytest.mark.parametrize(("build", "status"), ATTACKS)
def test_attacks_get_no_5xx_and_leak_nothing(
    server: UvicornServer, signer: CallbackSigner, build: object, status: int
) -> None:
    request = build(signer)  # type: ignore[operator]
    response = requests.request(
        request.method, server.url(request.url("/wecom")), data=request.body, timeout=10
    )
    assert response.status_code == status
    assert MARKER.encode() not in response.content
    log = server.log()
    for secret in (TOKEN, KEY, MARKER, "Traceback"):
        assert secret not in log
