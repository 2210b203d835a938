"""A real Redis Sentinel group for the tests: a master, a replica and three sentinels.

``redis_sentinel`` starts them for the whole session (``redis-server --sentinel``, the same
program as the ``redis-sentinel`` command), with a quorum of two and a master declared down after
0.5 s, and waits until every sentinel knows the replica and the other sentinels, so that a
failover can happen at once.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.redis_cluster import RedisNode, wait_until

__all__ = ["RedisSentinelGroup", "redis_sentinel", "redis_sentinel_url"]

SERVICE = "wecom"


class RedisSentinelGroup:
    """Two data nodes (master and replica) watched by three sentinels, on 127.0.0.1."""

    def __init__(self, directory: Path) -> None:
        self.data = [RedisNode(directory / "master")]
        self.data.append(
            RedisNode(directory / "replica", {"replicaof": f"127.0.0.1 {self.data[0].port}"})
        )
        self.sentinels = [
            RedisNode(
                directory / f"sentinel{index}",
                {
                    "sentinel monitor": f"{SERVICE} 127.0.0.1 {self.data[0].port} 2",
                    "sentinel down-after-milliseconds": f"{SERVICE} 500",
                    "sentinel failover-timeout": f"{SERVICE} 5000",
                    "sentinel parallel-syncs": f"{SERVICE} 1",
                },
                sentinel=True,
            )
            for index in range(3)
        ]

    @property
    def url(self) -> str:
        """A ``redis+sentinel://`` URL naming every sentinel and the service."""
        return "redis+sentinel://" + ",".join(s.address for s in self.sentinels) + f"/{SERVICE}/0"

    def start(self) -> None:
        """Start everything; wait until each sentinel sees a replica and two other sentinels."""
        for node in [*self.data, *self.sentinels]:
            node.start()
        self.wait_until_ready()

    def wait_until_ready(self) -> None:
        """Wait until each sentinel knows a master with a replica and the two other sentinels."""

        def ready() -> bool:
            for sentinel in self.sentinels:
                with sentinel.client() as client:
                    state = client.sentinel_master(SERVICE)
                    if state["num-slaves"] < 1 or state["num-other-sentinels"] < 2:
                        return False
            master = self.master()
            if master is None:
                return False
            with master.client() as client:  # and the replica follows it
                return bool(client.info("replication").get("slave0", {}).get("state") == "online")

        wait_until(ready, "the sentinels to know the replica and each other")

    def master(self) -> RedisNode | None:
        """The data node every sentinel names as master, if they agree and it runs."""
        addresses = set()
        for sentinel in self.sentinels:
            with sentinel.client() as client:
                _, port = client.sentinel_get_master_addr_by_name(SERVICE)
                addresses.add(int(port))
        found = [node for node in self.data if {node.port} == addresses and node.running]
        return found[0] if found else None

    def flush(self) -> None:
        """Empty the master (the replica follows)."""
        master = self.master()
        assert master is not None
        with master.client() as client:
            client.flushall()

    def stop(self) -> None:
        """Stop every process."""
        for node in [*self.sentinels, *self.data]:
            node.stop()


@pytest.fixture(scope="session")
def redis_sentinel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisSentinelGroup]:
    """One Sentinel group for the session."""
    group = RedisSentinelGroup(tmp_path_factory.mktemp("redis-sentinel"))
    try:
        group.start()
        yield group
    finally:
        group.stop()


@pytest.fixture
def redis_sentinel_url(redis_sentinel: RedisSentinelGroup) -> str:
    """The URL of the session's Sentinel group, with both data nodes up and the master empty."""
    for node in redis_sentinel.data:
        node.start()  # a master an earlier test killed comes back as a replica
    redis_sentinel.wait_until_ready()
    redis_sentinel.flush()
    return redis_sentinel.url
