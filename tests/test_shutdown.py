"""Graceful stop: a gunicorn worker stopped with SIGTERM finishes what it started.

A handler past WeCom's deadline still running, and an AI-bot stream still producing, when
the worker is told to stop: the reply still arrives through message/send, and the stream is
finished in the shared store (so a refresh on another worker gets all of it).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from flask_wecom.replies import StreamReply
from flask_wecom.stores import store_from_url
from flask_wecom.streams import StreamStore
from flask_wecom.testing import CallbackSigner
from harness.forge import KEY, TOKEN
from harness.web_servers import GunicornServer
from tests.support.fake_wecom_api import FAKE_CORP_ID, FakeWeComAPIProcess, wecom_settings

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def api() -> Iterator[FakeWeComAPIProcess]:
    with FakeWeComAPIProcess() as fake:
        yield fake


def test_a_late_handler_finishes_after_sigterm(api: FakeWeComAPIProcess, redis_url: str) -> None:
    api.reset()
    settings = wecom_settings(api.url)
    signer = CallbackSigner(
        settings["WECOM_TOKEN"], settings["WECOM_ENCODING_AES_KEY"], FAKE_CORP_ID
    )
    env = {**settings, "WECOM_REDIS_URL": redis_url, "WECOM_DEADLINE": "0.2"}
    app = "example_app.wsgi_app:application"
    with GunicornServer(app, env=env, workers=1, graceful_timeout=10) as server:
        request = signer.text("slow 3", from_user="wangwu")
        answer = requests.post(server.url(request.url("/wecom")), data=request.body, timeout=10)
        assert (answer.status_code, answer.content) == (200, b"")  # answered at the deadline
        server.stop()  # SIGTERM with the handler's 3 seconds barely begun
    [sent] = api.sent_messages(1, timeout=5)
    assert (sent["touser"], sent["text"]["content"]) == ("wangwu", "done after 3 s")


def test_a_stream_is_finished_after_sigterm(redis_url: str) -> None:
    env = {
        "WECOM_AIBOT_TOKEN": TOKEN,
        "WECOM_AIBOT_ENCODING_AES_KEY": KEY,
        "WECOM_REDIS_URL": redis_url,
    }
    bot = CallbackSigner(TOKEN, KEY, "", format="json")
    app = "tests.apps.bot_app:app"
    with GunicornServer(app, env=env, workers=1, graceful_timeout=10) as server:
        request = bot.aibot_text("slowly")
        answer = requests.post(server.url(request.url("/aibot")), data=request.body, timeout=10)
        first = bot.open_reply(answer.content, request)
        assert isinstance(first, StreamReply) and not first.finish
        server.stop()  # SIGTERM while the stream is still producing
    # Read after the worker exited: nothing is left to finish it.
    snapshot = StreamStore(store_from_url(redis_url), scope="aibot").snapshot(first.id)
    assert snapshot == StreamReply(first.id, "Thinking about slowly.", finish=True)
