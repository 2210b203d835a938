"""Retries end to end: real gunicorn with 3 workers sharing one real Redis.

WeCom resends a callback it got no answer to within 5 s, three times in all, with a
fresh nonce and timestamp each time. Every callback must run its handler exactly
once and every send must get the same reply; a worker killed mid-handler must not
lose the callback; Redis going away must not fail a single request.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis
import requests

from flask_wecom.testing import CallbackSigner, SignedRequest
from tests.support.gunicorn import GunicornServer
from tests.support.redis_server import RedisServer
from tests.test_crypto import CORP_ID, KEY, TOKEN

pytestmark = pytest.mark.slow
log = logging.getLogger(__name__)

CALLBACKS = 200
SENDS_PER_CALLBACK = 4


@pytest.fixture(scope="module")
def counter(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A second Redis, only for counting handler executions (it stays up when the first stops)."""
    server = RedisServer(tmp_path_factory.mktemp("counter"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def storm_server(redis_server: RedisServer, counter: RedisServer) -> Iterator[GunicornServer]:
    env = {
        "WECOM_TOKEN": TOKEN,
        "WECOM_ENCODING_AES_KEY": KEY,
        "WECOM_CORP_ID": CORP_ID,
        "WECOM_REDIS_URL": redis_server.url,
        "WECOM_DEDUP_LEASE": "1",
        "STORM_COUNTER_URL": counter.url,
    }
    with GunicornServer("tests.apps.storm_app:app", env=env, workers=3, threads=8) as server:
        yield server


@pytest.fixture
def counts(counter: RedisServer) -> redis.Redis:
    client = counter.client()
    client.flushall()
    return client


@pytest.fixture
def signer() -> CallbackSigner:
    return CallbackSigner(TOKEN, KEY, CORP_ID)


def post(server: GunicornServer, request: SignedRequest, timeout: float = 10) -> requests.Response:
    return requests.post(server.url(request.url("/wecom")), data=request.body, timeout=timeout)


def executions(counts: redis.Redis, request: SignedRequest, signer: CallbackSigner) -> int:
    from flask_wecom.messages import parse_message

    value = counts.get(f"executions:{parse_message(request.plaintext).msg_id}")
    return int(value or 0)


def test_retry_storm(
    storm_server: GunicornServer, signer: CallbackSigner, counts: redis.Redis, redis_url: str
) -> None:
    """200 callbacks, each sent 4 times: half all at once, half after the first answer.

    Sequential retries all get the first arrival's reply. Of concurrent ones, at most one
    waits for the running first arrival; the others are answered empty at once, which WeCom
    accepts, so replays cannot hold every request thread of a worker.
    """
    firsts = [signer.text(f"slow:0.3:{i}" if i % 10 == 0 else f"c{i}") for i in range(CALLBACKS)]

    def deliver(index: int) -> list[bytes | None]:
        first = firsts[index]
        retries = [signer.callback(first.plaintext) for _ in range(SENDS_PER_CALLBACK - 1)]
        if index % 2:  # sequential: retries after the first answer
            answers = [(r, post(storm_server, r)) for r in [first, *retries]]
        else:  # concurrent: all four at once, like retries overtaking a slow first
            with ThreadPoolExecutor(SENDS_PER_CALLBACK) as pool:
                answers = list(
                    zip(
                        [first, *retries],
                        pool.map(lambda r: post(storm_server, r), [first, *retries]),
                        strict=True,
                    )
                )
        assert all(response.status_code == 200 for _, response in answers)
        return [signer.decrypt_reply(response.content, request) for request, response in answers]

    with ThreadPoolExecutor(16) as pool:
        replies = list(pool.map(deliver, range(CALLBACKS)))

    runs = [executions(counts, request, signer) for request in firsts]
    sequential, concurrent = replies[1::2], replies[0::2]
    mismatches = sum(len(set(r)) != 1 or None in r for r in sequential)
    mismatches += sum(len(set(r) - {None}) != 1 for r in concurrent)  # one reply, or empty
    empties = sum(r.count(None) for r in concurrent)
    log.warning(
        "retry storm: %d callbacks, %d sends, %d executions, %d mismatches, %d answered empty",
        CALLBACKS,
        CALLBACKS * SENDS_PER_CALLBACK,
        sum(runs),
        mismatches,
        empties,
    )
    assert runs == [1] * CALLBACKS
    assert mismatches == 0
    assert empties <= len(concurrent) * (SENDS_PER_CALLBACK - 1)


def test_worker_killed_mid_handler(
    storm_server: GunicornServer, signer: CallbackSigner, counts: redis.Redis, redis_url: str
) -> None:
    """SIGKILL every worker while a slow handler runs: the retry after the lease runs it again."""
    first = signer.text("slow:2:killed")
    with ThreadPoolExecutor(1) as pool:
        doomed = pool.submit(post, storm_server, first)
        deadline = time.monotonic() + 5
        while executions(counts, first, signer) == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        for pid in storm_server.worker_pids():
            os.kill(pid, signal.SIGKILL)
        with pytest.raises(requests.ConnectionError):
            doomed.result()
    time.sleep(1.5)  # the dead worker's lease (1 s) runs out; WeCom's retry comes after 5 s
    retry = signer.callback(first.plaintext)
    response = post(storm_server, retry)
    assert response.status_code == 200
    reply = signer.open_reply(response.content, retry)
    assert reply is not None and reply.content.startswith("slow:2:killed:")  # type: ignore[attr-defined]
    assert executions(counts, first, signer) == 2


def test_redis_down_mid_run(
    storm_server: GunicornServer,
    signer: CallbackSigner,
    counts: redis.Redis,
    redis_server: RedisServer,
) -> None:
    """With the dedup Redis stopped, callbacks are still answered; the error is logged, rarely."""
    redis_server.stop()
    try:
        requests_ = [signer.text(f"no-redis-{i}") for i in range(12)]
        with ThreadPoolExecutor(6) as pool:
            responses = list(pool.map(lambda r: post(storm_server, r), requests_))
    finally:
        redis_server.start()
    assert [r.status_code for r in responses] == [200] * 12
    for index, (request, response) in enumerate(zip(requests_, responses, strict=True)):
        reply = signer.open_reply(response.content, request)
        assert reply is not None and reply.content.startswith(f"no-redis-{index}:")  # type: ignore[attr-defined]
    errors = storm_server.log().count("dedup store failed")
    assert 1 <= errors <= 3  # at most once a minute per worker
