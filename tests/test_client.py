"""Tests for flask_wecom.client against the fake WeCom API on a real loopback HTTP server."""

from __future__ import annotations

import hashlib
import json
import logging
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from typing import TYPE_CHECKING, Any

import pytest
import redis

from flask_wecom.client import TransportError, WeComClient
from flask_wecom.errors import APIError, WeComError
from flask_wecom.stores import MemoryStore, RedisStore, Store

if TYPE_CHECKING:
    from tests.support.fake_wecom_api import FakeWeComAPI, FakeWeComAPIProcess


GETTOKEN = "/cgi-bin/gettoken"
SEND = "/cgi-bin/message/send"
ClientFactory = Callable[..., WeComClient]


class FakeClock:
    """A wall clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["memory", "redis"])
def store(request: pytest.FixtureRequest) -> Iterator[Store]:
    """Each token test runs with a MemoryStore and with a RedisStore on a real redis-server."""
    if request.param == "memory":
        yield MemoryStore()
        return
    redis_store = RedisStore(request.getfixturevalue("redis_url"))
    yield redis_store
    redis_store.close()


def _store_keys(client: WeComClient) -> tuple[str, str]:
    """The token key and lock key the client uses: a SHA-256 of corp_id and secret, no secret."""
    digest = hashlib.sha256(f"{client.corp_id}\n{client._secret}".encode()).hexdigest()
    return f"access_token:{digest}", f"access_token_lock:{digest}"


def _text_of(error: BaseException) -> str:
    """Everything an exception shows when printed or logged, chained causes included."""
    return repr(error) + "".join(traceback.format_exception(error))


# Construction


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        pytest.param({"corp_id": ""}, "corp_id", id="empty-corp-id"),
        pytest.param({"secret": ""}, "secret", id="empty-secret"),
        pytest.param({"timeout": 0}, "timeout must be a positive", id="zero-timeout"),
    ],
)
def test_bad_configuration_is_rejected(arguments: dict[str, Any], message: str) -> None:
    """The constructor refuses what cannot work, with a ValueError that says what is wrong."""
    options: dict[str, Any] = {"corp_id": "ww1", "secret": "s", **arguments}
    with pytest.raises(ValueError, match=message):
        WeComClient(**options)


def test_without_requests_the_constructor_says_what_to_install() -> None:
    """Importing the module works without requests; building a client names the extra."""
    code = (
        "import sys; sys.modules['requests'] = None\n"
        "from flask_wecom.client import WeComClient\n"
        "try:\n"
        "    WeComClient('ww1', 's')\n"
        "except ImportError as error:\n"
        "    print(error)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert "pip install 'flask-wecom[client]'" in result.stdout


# Access token cache


def test_token_is_cached_for_many_calls(
    fake_wecom_api: FakeWeComAPI, wecom_client_factory: ClientFactory, store: Store
) -> None:
    """Five sends and two clients on one store make a single gettoken call."""
    first, second = wecom_client_factory(store=store), wecom_client_factory(store=store)
    for _ in range(5):
        first.send_text("hi", to_user="zhangsan")
    assert second.access_token() == first.access_token()
    assert fake_wecom_api.calls(GETTOKEN) == 1
    assert fake_wecom_api.calls(SEND) == 5


def test_clients_without_a_store_share_the_process_store(
    fake_wecom_api: FakeWeComAPI, wecom_client_factory: ClientFactory
) -> None:
    """Clients given no store share one MemoryStore per process."""
    first, second = wecom_client_factory(store=None), wecom_client_factory(store=None)
    first.send_text("hi", to_user="zhangsan")  # may meet a token cached by an earlier test
    assert second.access_token() == first.access_token()
    assert fake_wecom_api.calls(GETTOKEN) == 1


def test_cache_holds_token_and_expiry_in_one_value_under_a_hashed_key(
    fake_wecom_api: FakeWeComAPI, wecom_client_factory: ClientFactory, redis_url: str
) -> None:
    """In Redis: one key, named by a SHA-256 (never the secret), holding token and expiry."""
    clock = FakeClock()
    with closing(RedisStore(redis_url)) as store:
        client = wecom_client_factory(store=store, clock=clock)
        token = client.access_token()
    with redis.Redis.from_url(redis_url) as inspector:
        keys = inspector.keys("*")
        assert keys == [f"wecom:{_store_keys(client)[0]}".encode()]
        value = json.loads(inspector.get(keys[0]))
        assert 7100 < inspector.ttl(keys[0]) <= 7200
    assert value == {
        "access_token": token,
        "refresh_at": clock.now + 7200 - 300,
        "expires_at": clock.now + 7200,
    }
    assert fake_wecom_api.secret.encode() not in keys[0]


TOKEN_IN_A_SUBPROCESS = """
import sys
from flask_wecom.client import WeComClient
from flask_wecom.stores import RedisStore

base_url, redis_url, corp_id, secret = sys.argv[1:]
with WeComClient(corp_id, secret, base_url=base_url, store=RedisStore(redis_url)) as client:
    print("ready", flush=True)
    sys.stdin.readline()
    print(client.access_token(), flush=True)
"""


@pytest.mark.slow
def test_token_is_shared_by_two_processes_through_redis(
    fake_wecom_api: FakeWeComAPI, redis_url: str
) -> None:
    """Two processes asking at the same moment through one Redis make one gettoken call."""
    fake_wecom_api.configure(delays={GETTOKEN: 0.3})
    arguments = [fake_wecom_api.url, redis_url, fake_wecom_api.corp_id, fake_wecom_api.secret]
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", TOKEN_IN_A_SUBPROCESS, *arguments],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    for process in processes:
        assert process.stdout is not None
        assert process.stdout.readline() == "ready\n"
    for process in processes:  # both go at once; communicate() would wait for each in turn
        assert process.stdin is not None
        process.stdin.write("go\n")
        process.stdin.flush()
    outputs = [process.communicate(timeout=30)[0] for process in processes]
    assert [process.returncode for process in processes] == [0, 0]
    assert outputs[0] == outputs[1] != ""
    assert fake_wecom_api.calls(GETTOKEN) == 1


@pytest.mark.parametrize(
    ("expires_in", "fresh_for"),
    [
        pytest.param(7200, 6900, id="refresh-5-minutes-early"),
        pytest.param(900, 600, id="short-lifetime-still-5-minutes"),
        pytest.param(400, 200, id="margin-capped-at-half-the-lifetime"),
    ],
)
def test_token_is_refreshed_before_it_expires(
    fake_wecom_api: FakeWeComAPI,
    wecom_client_factory: ClientFactory,
    store: Store,
    expires_in: int,
    fresh_for: int,
) -> None:
    """The cached token serves until its refresh time, then gettoken is called again."""
    fake_wecom_api.configure(expires_in=expires_in)
    clock = FakeClock()
    client = wecom_client_factory(store=store, clock=clock)
    first = client.access_token()
    clock.now += fresh_for - 1
    assert client.access_token() == first
    assert fake_wecom_api.calls(GETTOKEN) == 1
    clock.now += 1
    second = client.access_token()
    assert second != first
    assert fake_wecom_api.calls(GETTOKEN) == 2
    client.send_text("still valid", to_user="zhangsan")


@pytest.mark.parametrize("errcode", [40014, 42001, 40001])
def test_invalid_token_errcode_fetches_a_new_token_once(
    fake_wecom_api: FakeWeComAPI, wecom_client_factory: ClientFactory, store: Store, errcode: int
) -> None:
    """An invalid-token errcode drops the cached token, fetches one and retries once."""
    client = wecom_client_factory(store=store)
    old = client.access_token()
    fake_wecom_api.fail_next(errcode, path=SEND)
    assert client.send_text("hi", to_user="zhangsan")["errcode"] == 0
    assert client.access_token() != old
    assert (fake_wecom_api.calls(GETTOKEN), fake_wecom_api.calls(SEND)) == (2, 2)


def test_token_revoked_by_wecom_is_replaced(
    fake_wecom_api: FakeWeComAPI, wecom_client_factory: ClientFactory
) -> None:
    """A token WeCom invalidated early (a real 40014 from the fake) is replaced."""
    client = wecom_client_factory()
    client.access_token()
    fake_wecom_api.revoke_tokens()
    client.send_text("hi", to_user="zhangsan")
    assert fake_wecom_api.calls(GETTOKEN) == 2
    assert len(fake_wecom_api.state()["messages"]) == 1


def test_invalid_token_twice_raises(
    fake_wecom_api: FakeWeComAPI, wecom_client_factory: ClientFactory
) -> None:
    """The token is refetched once only; a second invalid-token answer raises."""
    client = wecom_client_factory()
    fake_wecom_api.fail_next(42001, times=2, path=SEND)
    with pytest.raises(APIError) as caught:
        client.send_text("hi", to_user="zhangsan")
    assert caught.value.errcode == 42001
    assert (fake_wecom_api.calls(GETTOKEN), fake_wecom_api.calls(SEND)) == (2, 2)


def test_invalid_token_keeps_a_token_refreshed_meanwhile(
    fake_wecom_api: FakeWeComAPI, wecom_client_factory: ClientFactory
) -> None:
    """If another caller replaced the failing token while the call was in flight, reuse that one."""
    store, clock = MemoryStore(), FakeClock()
    slow, other = (wecom_client_factory(store=store, clock=clock) for _ in range(2))
    slow.access_token()
    fake_wecom_api.configure(delays={SEND: 0.5})
    fake_wecom_api.fail_next(40014, path=SEND)
    with ThreadPoolExecutor(1) as pool:
        sending = pool.submit(slow.send_text, "hi", to_user="zhangsan")
        while fake_wecom_api.calls(SEND) == 0:
            time.sleep(0.01)
        clock.now += 7200 - 300  # due for refresh: `other` fetches a new token
        refreshed = other.access_token()
        sending.result(timeout=10)
    assert fake_wecom_api.calls(GETTOKEN) == 2  # not 3: the new token was kept
    assert slow.access_token() == refreshed


@pytest.mark.parametrize(
    "warm", [pytest.param(False, id="no-token"), pytest.param(True, id="token-due-for-refresh")]
)
def test_sixteen_threads_refresh_with_one_gettoken(
    fake_wecom_api: FakeWeComAPI, wecom_client_factory: ClientFactory, store: Store, warm: bool
) -> None:
    """Concurrent callers needing a token make one gettoken call between them."""
    clock = FakeClock()
    clients = [wecom_client_factory(store=store, clock=clock) for _ in range(16)]
    if warm:
        clients[0].access_token()
        clock.now += 7200 - 300
    fake_wecom_api.configure(delays={GETTOKEN: 0.3})
    start = threading.Barrier(16)

    def token(client: WeComClient) -> str:
        start.wait()
        return client.access_token()

    with ThreadPoolExecutor(16) as pool:
        tokens = set(pool.map(token, clients))
    assert fake_wecom_api.calls(GETTOKEN) == 1 + warm
    # While the refresh runs, the others keep using the old token, which is still valid.
    assert len(tokens) == 1 + warm


def test_waiters_take_over_when_the_refresh_fails(
    fake_wecom_api: FakeWeComAPI, wecom_client_factory: ClientFactory, store: Store
) -> None:
    """The lock is released when gettoken fails, so a waiting caller refreshes instead."""
    clients = [wecom_client_factory(store=store) for _ in range(4)]
    fake_wecom_api.configure(delays={GETTOKEN: 0.3})
    fake_wecom_api.fail_next(60011, path=GETTOKEN)
    start = threading.Barrier(4)

    def token(client: WeComClient) -> str | int:
        start.wait()
        try:
            return client.access_token()
        except APIError as error:
            return error.errcode

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(token, clients))
    assert results.count(60011) == 1
    assert len({result for result in results if result != 60011}) == 1
    assert fake_wecom_api.calls(GETTOKEN) == 2


def test_waiter_fetches_itself_after_a_bounded_wait(
    fake_wecom_api: FakeWeComAPI, wecom_client_factory: ClientFactory, store: Store
) -> None:
    """A lock left by a caller that died is waited on for token_wait seconds, then ignored."""
    client = wecom_client_factory(store=store)
    client.token_wait = 0.2
    store.add(_store_keys(client)[1], b"a caller that died", 60)
    assert client.access_token()
    assert fake_wecom_api.calls(GETTOKEN) == 1


def test_unreadable_cached_value_is_replaced(
    fake_wecom_api: FakeWeComAPI,
    wecom_client_factory: ClientFactory,
    store: Store,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A value under the token key that this module did not write is ignored and overwritten."""
    client = wecom_client_factory(store=store)
    store.set(_store_keys(client)[0], b"not json", 60)
    token = client.access_token()
    assert "unreadable cached WeCom access token" in caplog.text
    assert client.access_token() == token
    assert fake_wecom_api.calls(GETTOKEN) == 1


# Errors and retries


@pytest.mark.parametrize("errcode", [-1, 45009])
@pytest.mark.parametrize(
    ("failures", "pauses"),
    [pytest.param(1, [0.5], id="one-failure"), pytest.param(2, [0.5, 1.0], id="two-failures")],
)
def test_busy_errcodes_are_retried_with_backoff(
    fake_wecom_api: FakeWeComAPI,
    wecom_client_factory: ClientFactory,
    errcode: int,
    failures: int,
    pauses: list[float],
) -> None:
    """-1 and 45009 are retried after 0.5 s, then 1 s; the third attempt succeeds."""
    sleeps: list[float] = []
    client = wecom_client_factory(sleep=sleeps.append)
    fake_wecom_api.fail_next(errcode, times=failures, path=SEND)
    assert client.send_text("hi", to_user="zhangsan")["msgid"]
    assert sleeps == pauses
    assert fake_wecom_api.calls(SEND) == failures + 1


@pytest.mark.parametrize("path", [SEND, GETTOKEN])
@pytest.mark.parametrize("errcode", [-1, 45009])
def test_busy_errcodes_give_up_after_three_attempts(
    fake_wecom_api: FakeWeComAPI, wecom_client_factory: ClientFactory, errcode: int, path: str
) -> None:
    """After 3 attempts the errcode is raised as APIError, for gettoken as for other calls."""
    sleeps: list[float] = []
    client = wecom_client_factory(sleep=sleeps.append)
    fake_wecom_api.fail_next(errcode, times=3, path=path)
    with pytest.raises(APIError) as caught:
        client.send_text("hi", to_user="zhangsan")
    assert caught.value.errcode == errcode
    assert fake_wecom_api.calls(path) == 3
    assert sleeps == [0.5, 1.0]


def test_api_error_carries_errcode_and_errmsg(
    fake_wecom_api: FakeWeComAPI, wecom_client_factory: ClientFactory
) -> None:
    """Other errcodes raise at once, with WeCom's errcode and errmsg."""
    client = wecom_client_factory()
    fake_wecom_api.fail_next(81013, path=SEND)
    with pytest.raises(APIError) as caught:
        client.send_text("hi", to_user="nobody")
    assert (caught.value.errcode, caught.value.errmsg) == (81013, "injected failure")
    assert str(caught.value) == "WeCom API error 81013: injected failure"
    assert isinstance(caught.value, WeComError)
    assert fake_wecom_api.calls(SEND) == 1


@pytest.mark.parametrize(
    ("arguments", "errcode"),
    [
        pytest.param({"secret": "wrong-secret-0123456789"}, 40001, id="wrong-secret"),
        pytest.param({"corp_id": "ww-wrong"}, 40013, id="wrong-corp-id"),
    ],
)
def test_gettoken_failure_is_not_mistaken_for_an_expired_token(
    fake_wecom_api: FakeWeComAPI,
    wecom_client_factory: ClientFactory,
    arguments: dict[str, Any],
    errcode: int,
) -> None:
    """A 40001 from gettoken itself (wrong secret) raises after one call, secret not shown."""
    client = wecom_client_factory(**arguments)
    with pytest.raises(APIError) as caught:
        client.send_text("hi", to_user="zhangsan")
    assert caught.value.errcode == errcode
    assert fake_wecom_api.calls(GETTOKEN) == 1
    assert "wrong-secret" not in _text_of(caught.value)


def _fail_send_with_40014(api: FakeWeComAPI, client: WeComClient) -> None:
    client.access_token()
    api.fail_next(40014, times=2, path=SEND)


def _stop_server_after_token(api: FakeWeComAPI, client: WeComClient) -> None:
    client.access_token()
    api.stop()


def _stop_server(api: FakeWeComAPI, client: WeComClient) -> None:
    api.stop()


def _wrong_base_path(api: FakeWeComAPI, client: WeComClient) -> None:
    client.base_url = api.url + "/not-wecom"


@pytest.mark.parametrize(
    ("setup", "error", "message"),
    [
        pytest.param(_fail_send_with_40014, APIError, "WeCom API error 40014", id="api-error"),
        pytest.param(
            _stop_server_after_token,
            TransportError,
            "POST /cgi-bin/message/send failed: ConnectionError",
            id="send-unreachable",
        ),
        pytest.param(
            _stop_server,
            TransportError,
            "GET /cgi-bin/gettoken failed: ConnectionError",
            id="gettoken-unreachable",
        ),
        pytest.param(
            _wrong_base_path,
            TransportError,
            "GET /cgi-bin/gettoken answered HTTP 404",
            id="http-404",
        ),
    ],
)
def test_secret_and_token_never_shown(
    fake_wecom_api: FakeWeComAPI,
    wecom_client_factory: ClientFactory,
    caplog: pytest.LogCaptureFixture,
    setup: Callable[[FakeWeComAPI, WeComClient], None],
    error: type[WeComError],
    message: str,
) -> None:
    """Errors and the library's logs name the call, never the secret or the token."""
    caplog.set_level(logging.DEBUG, logger="flask_wecom")
    store = MemoryStore()
    client = wecom_client_factory(store=store)
    setup(fake_wecom_api, client)
    cached_before = store.get(_store_keys(client)[0])
    with pytest.raises(error, match=message) as caught:
        client.send_text("hi", to_user="zhangsan")
    cached_after = store.get(_store_keys(client)[0])
    tokens = {json.loads(raw)["access_token"] for raw in (cached_before, cached_after) if raw}
    shown = _text_of(caught.value) + caplog.text
    assert "/cgi-bin/" in shown
    for hidden in (fake_wecom_api.secret, *tokens):
        assert hidden not in shown


def test_answer_without_errcode_is_a_transport_error(
    wecom_client_factory: ClientFactory,
) -> None:
    """JSON without an integer errcode (here the fake's state answer) is not an API answer."""
    client = wecom_client_factory()
    client.base_url += "/_fake/state?"
    with pytest.raises(TransportError, match="answered JSON without an integer errcode"):
        client.access_token()


def test_gettoken_answer_without_a_token_is_a_transport_error(
    fake_wecom_api: FakeWeComAPI, wecom_client_factory: ClientFactory
) -> None:
    """errcode 0 without access_token and expires_in is not a token."""
    fake_wecom_api.fail_next(0, path=GETTOKEN)
    with pytest.raises(TransportError, match="answered without access_token, expires_in"):
        wecom_client_factory().access_token()


# Messages


def test_send_text_payload_as_received(
    fake_wecom_api: FakeWeComAPI, wecom_client_factory: ClientFactory
) -> None:
    """send_text posts the documented body, UTF-8 encoded, and returns WeCom's answer."""
    client = wecom_client_factory()
    answer = client.send_text("你好 <b>&", to_user="zhangsan|lisi", to_tag="1", safe=True)
    assert answer["errcode"] == 0
    assert answer["msgid"]
    state = fake_wecom_api.state()
    assert state["messages"] == [
        {
            "touser": "zhangsan|lisi",
            "totag": "1",
            "msgtype": "text",
            "text": {"content": "你好 <b>&"},
            "safe": 1,
            "agentid": client.agent_id,
        }
    ]
    assert "你好" in state["raw_bodies"][0]


CARD = {"card_type": "text_notice", "main_title": {"title": "构建"}, "card_action": {"type": 1}}


@pytest.mark.parametrize(
    ("send", "msgtype", "content"),
    [
        pytest.param(lambda c: c.send_text("t", to_party="2"), "text", {"content": "t"}, id="text"),
        pytest.param(
            lambda c: c.send_markdown("**m**", to_party="2"),
            "markdown",
            {"content": "**m**"},
            id="markdown",
        ),
        pytest.param(
            lambda c: c.send_news([{"title": "新闻", "url": "https://e.com"}], to_party="2"),
            "news",
            {"articles": [{"title": "新闻", "url": "https://e.com"}]},
            id="news",
        ),
        pytest.param(
            lambda c: c.send_textcard("标题", "描述", "https://e.com", to_party="2"),
            "textcard",
            {"title": "标题", "description": "描述", "url": "https://e.com", "btntxt": "详情"},
            id="textcard",
        ),
        pytest.param(
            lambda c: c.send_template_card(CARD, to_party="2"),
            "template_card",
            CARD,
            id="template-card",
        ),
    ],
)
def test_send_helpers_build_the_documented_body(
    fake_wecom_api: FakeWeComAPI,
    wecom_client_factory: ClientFactory,
    send: Callable[[WeComClient], dict[str, Any]],
    msgtype: str,
    content: dict[str, Any],
) -> None:
    """Each helper sends msgtype, its content object, the recipients and the agentid."""
    client = wecom_client_factory()
    answer = send(client)
    (message,) = fake_wecom_api.state()["messages"]
    expected = {"toparty": "2", "msgtype": msgtype, msgtype: content, "agentid": client.agent_id}
    if msgtype == "text":
        expected["safe"] = 0
    assert message == expected
    assert ("response_code" in answer) == (msgtype == "template_card")


def test_send_message_keeps_a_given_agentid(
    fake_wecom_api: FakeWeComAPI, wecom_client_factory: ClientFactory
) -> None:
    """A message's own agentid wins; without one the client's agent_id is filled in."""
    client = wecom_client_factory(agent_id=None)
    message = {"touser": "@all", "msgtype": "text", "text": {"content": "x"}, "agentid": 7}
    client.send_message(message)
    assert fake_wecom_api.state()["messages"] == [message]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        pytest.param(
            lambda c: c.send_text("x"), "at least one of to_user, to_party or to_tag", id="nobody"
        ),
        pytest.param(
            lambda c: c.send_text("x", to_user="@all"),
            "send_message needs the app's AgentId",
            id="no-agent-id",
        ),
    ],
)
def test_send_mistakes_raise_before_any_request(
    fake_wecom_api: FakeWeComAPI,
    wecom_client_factory: ClientFactory,
    call: Callable[[WeComClient], object],
    message: str,
) -> None:
    """A message without recipients or agentid raises ValueError and sends nothing."""
    with pytest.raises(ValueError, match=message):
        call(wecom_client_factory(agent_id=None))
    assert fake_wecom_api.state()["calls"] == {}


def test_recall_a_sent_message(
    fake_wecom_api: FakeWeComAPI, wecom_client_factory: ClientFactory
) -> None:
    """recall posts the msgid a send returned."""
    client = wecom_client_factory()
    msgid = client.send_text("oops", to_user="zhangsan")["msgid"]
    client.recall(msgid)
    assert fake_wecom_api.state()["recalled"] == [msgid]


# Custom menu


def test_menu_round_trip(fake_wecom_api: FakeWeComAPI, wecom_client_factory: ClientFactory) -> None:
    """A valid menu is created, read back unchanged, deleted; reading it then fails."""
    client = wecom_client_factory()
    menu = {
        "button": [
            {"type": "click", "name": "今日歌曲", "key": "V1001_TODAY_MUSIC"},
            {
                "name": "菜单",
                "sub_button": [{"type": "view", "name": "搜索", "url": "https://e.com"}],
            },
        ]
    }
    client.menu_create(menu)
    assert client.menu_get() == menu
    assert fake_wecom_api.state()["menus"] == {str(client.agent_id): menu}
    client.menu_delete()
    with pytest.raises(APIError) as caught:
        client.menu_get()
    assert caught.value.errcode == 46003


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(
            lambda c: c.menu_create({"button": [{"name": "x", "type": "click", "key": "k"}]}),
            id="create",
        ),
        pytest.param(lambda c: c.menu_get(), id="get"),
        pytest.param(lambda c: c.menu_delete(), id="delete"),
    ],
)
def test_menu_calls_need_an_agent_id(
    fake_wecom_api: FakeWeComAPI,
    wecom_client_factory: ClientFactory,
    call: Callable[[WeComClient], object],
) -> None:
    """Menu calls without an agent id raise ValueError before any request."""
    with pytest.raises(ValueError, match="needs the app's AgentId"):
        call(wecom_client_factory(agent_id=None))
    assert fake_wecom_api.state()["calls"] == {}


# The fake in another process


@pytest.mark.slow
def test_fake_in_a_subprocess_is_controlled_over_http(
    fake_wecom_api_process: FakeWeComAPIProcess,
) -> None:
    """The subprocess fake serves the client and reports its state over HTTP."""
    fake_wecom_api_process.fail_next(-1, path=SEND)
    with WeComClient(
        fake_wecom_api_process.corp_id,
        fake_wecom_api_process.secret,
        agent_id=1,
        base_url=fake_wecom_api_process.url,
        store=MemoryStore(),
        sleep=lambda seconds: None,
    ) as client:
        client.send_text("hi", to_user="zhangsan")
    state = fake_wecom_api_process.state()
    assert state["calls"] == {GETTOKEN: 1, SEND: 2}
    assert state["messages"][0]["text"] == {"content": "hi"}
