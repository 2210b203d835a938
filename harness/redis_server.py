"""A real, throwaway redis-server on a free loopback port, without persistence."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from harness.web_servers import free_port

__all__ = ["RedisServer"]

HOST = "127.0.0.1"
STARTUP_TIMEOUT = 10.0


class RedisServer:
    """A ``redis-server`` process on 127.0.0.1 with no persistence, working in ``directory``.

    The port is chosen once, so :meth:`stop` then :meth:`start` brings back an empty server at
    the same :attr:`url`, as a crashed and restarted Redis would be.
    """

    def __init__(self, directory: Path) -> None:
        executable = shutil.which("redis-server")
        if executable is None:
            raise RuntimeError(
                "redis-server is not on PATH; the tests need a real one "
                "(scripts/bootstrap.sh installs it: apt-get install redis-server)"
            )
        self._executable = executable
        self._directory = directory
        self._log = directory / "redis.log"
        self._process: subprocess.Popen[bytes] | None = None
        #: The TCP port the server listens on, the same across restarts.
        self.port = free_port()
        #: A redis:// URL for the server.
        self.url = f"redis://{HOST}:{self.port}/0"

    @property
    def running(self) -> bool:
        """True while the process started by :meth:`start` is alive."""
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        """The process id of the running server, else None."""
        return self._process.pid if self.running and self._process else None

    def start(self) -> None:
        """Start the server (again) on :attr:`port` and wait until it answers PING."""
        if self.running:
            return
        options = {
            "bind": HOST,
            "port": str(self.port),
            "save": "",  # no RDB snapshots: a restart starts empty
            "appendonly": "no",
            "dir": str(self._directory),
            "logfile": str(self._log),
        }
        arguments = [
            argument for name, value in options.items() for argument in (f"--{name}", value)
        ]
        self._process = subprocess.Popen(
            [self._executable, *arguments],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        try:
            self._wait_for_ping(self._process)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 5 s) and wait for it to exit."""
        if self._process is None:
            return
        process, self._process = self._process, None
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def client(self) -> redis.Redis:
        """A new client for the server that never retries; the caller closes it."""
        return redis.Redis(
            host=HOST, port=self.port, socket_timeout=1.0, retry=Retry(NoBackoff(), 0)
        )

    def _wait_for_ping(self, process: subprocess.Popen[bytes]) -> None:
        """Poll PING until it answers; fail with the server's log if it exits or stays silent."""
        deadline = time.monotonic() + STARTUP_TIMEOUT
        with self.client() as probe:
            while True:
                if process.poll() is not None:
                    raise RuntimeError(
                        f"redis-server exited with code {process.returncode}:\n{self._log_tail()}"
                    )
                try:
                    if probe.ping():
                        return
                except redis.ConnectionError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"redis-server did not answer PING within {STARTUP_TIMEOUT} s:\n"
                        f"{self._log_tail()}"
                    )
                time.sleep(0.02)

    def _log_tail(self) -> str:
        """The last lines of the server's log, for error messages."""
        try:
            return "\n".join(self._log.read_text(errors="replace").splitlines()[-20:])
        except FileNotFoundError:
            return "(no log written)"
