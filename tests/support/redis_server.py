"""The fixtures that share one real, throwaway redis-server across the tests.

``redis_server`` starts one process for the whole session on a free loopback port, without
persistence, so a restart loses every key. ``redis_url`` empties it before each test. A missing
``redis-server`` fails the run instead of skipping: scripts/bootstrap.sh installs it.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from harness.redis_server import RedisServer

__all__ = ["redis_server", "redis_url"]


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One redis-server for the whole session, stopped at the end whatever happened."""
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The URL of an empty, running redis-server (restarted if an earlier test left it stopped)."""
    redis_server.start()
    with redis_server.client() as client:
        client.flushall()
    return redis_server.url
