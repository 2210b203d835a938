"""A real Redis Cluster for the tests: three masters, each with a replica, on loopback.

``redis_cluster`` starts six ``redis-server`` processes in cluster mode for the whole session
(node timeout 1 s, so a killed master's replica takes over within about two seconds), joins them
with ``redis-cli --cluster create`` and waits until every node reports ``cluster_state:ok``.
:class:`RedisNode` is one server process with any options; the Sentinel fixture uses it too.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from harness.redis_server import RedisServer
from harness.web_servers import free_port

__all__ = ["RedisCluster", "RedisNode", "redis_cluster", "wait_until"]

HOST = "127.0.0.1"
#: How long a cluster or Sentinel group may take to form or to fail over, seconds.
SETTLE_TIMEOUT = 30.0


def wait_until(condition: Callable[[], bool], what: str, timeout: float = SETTLE_TIMEOUT) -> None:
    """Poll ``condition`` (connection errors count as False) until it holds, else fail."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if condition():
                return
        except redis.RedisError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


class RedisNode(RedisServer):
    """One ``redis-server`` process on 127.0.0.1 with the given options, logging to a file.

    :param directory: its working directory (config and log files); one per node.
    :param options: ``redis-server`` options, e.g. ``{"cluster-enabled": "yes"}``.
    :param sentinel: run it as a sentinel (``redis-server <config> --sentinel``; a sentinel
        rewrites its configuration file, so the options go into one).
    """

    def __init__(
        self, directory: Path, options: dict[str, str] | None = None, *, sentinel: bool = False
    ) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        super().__init__(directory)
        self.options = {
            "bind": HOST,
            "port": str(self.port),
            "dir": str(directory),
            "logfile": str(directory / "redis.log"),
        }
        if not sentinel:  # no persistence: a restarted node comes back empty
            self.options.update({"save": '""', "appendonly": "no"})
        self.options.update(options or {})
        self._config = directory / "redis.conf"
        self._sentinel = sentinel

    @property
    def address(self) -> str:
        """``host:port``."""
        return f"{HOST}:{self.port}"

    def start(self) -> None:
        """Start the process (again, with its last configuration) and wait until it answers."""
        if self.running:
            return
        if not self._config.exists():
            self._config.write_text("".join(f"{k} {v}\n" for k, v in self.options.items()))
        self._process = subprocess.Popen(
            [self._executable, str(self._config), *(["--sentinel"] if self._sentinel else [])],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        self._wait_for_ping(self._process)

    def kill(self) -> None:
        """SIGKILL: a crash, nothing saved, no goodbye to the others."""
        if self._process is not None:
            self._process.kill()
            self._process.wait()


class RedisCluster:
    """Three masters and three replicas in one Redis Cluster, on 127.0.0.1."""

    def __init__(self, directory: Path) -> None:
        self.nodes = [
            RedisNode(
                directory / f"node{index}",
                {
                    "cluster-enabled": "yes",
                    "cluster-config-file": "nodes.conf",
                    "cluster-node-timeout": "1000",
                    "cluster-port": str(free_port()),
                    # A killed master's replica takes over even if it lagged a moment.
                    "cluster-replica-validity-factor": "0",
                },
            )
            for index in range(6)
        ]

    @property
    def url(self) -> str:
        """A ``redis+cluster://`` URL naming two of the masters, as a deployment would."""
        return "redis+cluster://" + ",".join(node.address for node in self.nodes[:2])

    def start(self) -> None:
        """Start every node, create the cluster, and wait until it serves every slot."""
        for node in self.nodes:
            node.start()
        subprocess.run(
            [
                "redis-cli",
                "--cluster",
                "create",
                *(node.address for node in self.nodes),
                "--cluster-replicas",
                "1",
                "--cluster-yes",
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )
        self.wait_until_healthy()

    def wait_until_healthy(self) -> None:
        """Wait until every running node says ``cluster_state:ok`` and three masters serve."""

        def healthy() -> bool:
            for node in self.nodes:
                if node.running:
                    with node.client() as client:
                        if client.cluster("info")["cluster_state"] != "ok":
                            return False
            return len(self.masters()) == 3

        wait_until(healthy, "the cluster to serve every slot")

    def masters(self) -> list[RedisNode]:
        """The running nodes that are masters now."""
        found = []
        for node in self.nodes:
            if node.running:
                with node.client() as client:
                    if client.info("replication")["role"] == "master":
                        found.append(node)
        return found

    def flush(self) -> None:
        """Empty every master."""
        for node in self.masters():
            with node.client() as client:
                client.flushall()

    def stop(self) -> None:
        """Stop every node."""
        for node in self.nodes:
            node.stop()


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisCluster]:
    """One Redis Cluster for the session, emptied before each test that asks for it."""
    cluster = RedisCluster(tmp_path_factory.mktemp("redis-cluster"))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def redis_cluster_url(redis_cluster: RedisCluster) -> str:
    """The URL of the session's cluster, healthy and empty."""
    for node in redis_cluster.nodes:
        node.start()  # a node an earlier test killed rejoins as a replica
    redis_cluster.wait_until_healthy()
    redis_cluster.flush()
    return redis_cluster.url
