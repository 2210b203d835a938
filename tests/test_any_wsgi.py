"""The whole product without Flask: the plain-WSGI and Django examples under real gunicorn.

Both serve the handlers of example_app/bot.py through ``WeComMiddleware.from_config``,
configured from the environment like the Flask app, with 2 workers sharing a real Redis:
URL verification, routing by decorators, a retry answered once across workers, and a
handler past WeCom's deadline whose reply arrives through message/send.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import requests

from flask_wecom.replies import TextReply
from flask_wecom.testing import CallbackSigner, SignedRequest
from harness.web_servers import GunicornServer
from tests.support.fake_wecom_api import FAKE_CORP_ID, FakeWeComAPIProcess, wecom_settings

pytestmark = pytest.mark.slow

APPS = [
    pytest.param("example_app.wsgi_app:application", id="plain-wsgi"),
    pytest.param("example_app.django_site:application", id="django"),
]


@pytest.fixture(scope="module")
def api() -> Iterator[FakeWeComAPIProcess]:
    with FakeWeComAPIProcess() as fake:
        yield fake


@pytest.fixture(params=APPS)
def server(
    request: pytest.FixtureRequest, api: FakeWeComAPIProcess, redis_url: str
) -> Iterator[GunicornServer]:
    api.reset()
    env = {**wecom_settings(api.url), "WECOM_REDIS_URL": redis_url, "WECOM_DEADLINE": "1"}
    with GunicornServer(request.param, env=env, workers=2) as gunicorn:
        yield gunicorn


@pytest.fixture
def signer(api: FakeWeComAPIProcess) -> CallbackSigner:
    settings = wecom_settings(api.url)
    return CallbackSigner(settings["WECOM_TOKEN"], settings["WECOM_ENCODING_AES_KEY"], FAKE_CORP_ID)


def post(server: GunicornServer, request: SignedRequest) -> requests.Response:
    return requests.post(server.url(request.url("/wecom")), data=request.body, timeout=10)


def test_verification_routing_and_retries(server: GunicornServer, signer: CallbackSigner) -> None:
    verified = requests.get(server.url(signer.verification("4242").url("/wecom")), timeout=10)
    assert (verified.status_code, verified.text) == (200, "4242")
    click = signer.click("MENU_TODAY")
    assert signer.open_reply(post(server, click).content, click) == TextReply(
        "Today: stand-up at 10:00, release at 16:00."
    )
    first = signer.text("hello")
    answers = [post(server, first)] + [
        post(server, retry) for retry in (signer.resend(first), signer.resend(first))
    ]
    replies = {signer.decrypt_reply(a.content) for a in answers}
    assert len(replies) == 1  # one run: every resend got the very same encrypted reply
    assert signer.open_reply(answers[0].content, first) == TextReply("echo: hello")
    # Other paths belong to the wrapped application.
    assert requests.get(server.url("/"), timeout=10).status_code in (200, 404)


def test_a_handler_past_the_deadline_replies_by_message_send(
    server: GunicornServer, signer: CallbackSigner, api: FakeWeComAPIProcess
) -> None:
    for _ in range(4):  # warm both workers up: first requests import lazily
        assert post(server, signer.text("warm up")).status_code == 200
    request = signer.text("slow 1.5", from_user="lisi")
    started = time.monotonic()
    response = post(server, request)
    answered = time.monotonic() - started
    assert (response.status_code, response.content) == (200, b"")
    assert answered < 1.4  # answered at the 1 s deadline, not after the handler
    [sent] = api.sent_messages(1, timeout=5)
    assert (sent["touser"], sent["text"]["content"]) == ("lisi", "done after 1.5 s")
