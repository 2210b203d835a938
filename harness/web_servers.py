"""Real gunicorn on 127.0.0.1 for end-to-end tests: start, wait until it answers, stop.

Usage::

    with GunicornServer("example_app.app:app", env={...}, workers=2) as server:
        requests.post(server.url("/wecom?...") , data=...)

The server's output (access and error logs, and the app's own logging) goes to
``server.log_path`` so tests can assert what was and was not logged.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class GunicornServer:
    """One gunicorn master with its workers, bound to a free loopback port.

    :param app: the ``module:variable`` to serve, importable from the repository root.
    :param env: extra environment variables (e.g. ``WECOM_TOKEN``).
    :param workers: worker processes.
    :param threads: threads per worker (gthread worker class).
    :param timeout: gunicorn's worker timeout, seconds.
    :param graceful_timeout: seconds a worker has to finish after SIGTERM.
    :param worker_class: gunicorn's worker class (``gthread``, ``sync`` ...).
    """

    def __init__(
        self,
        app: str = "example_app.app:app",
        *,
        env: dict[str, str] | None = None,
        workers: int = 2,
        threads: int = 4,
        timeout: int = 30,
        graceful_timeout: int = 2,
        worker_class: str = "gthread",
    ) -> None:
        self.app = app
        self.port = free_port()
        self.env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
        self.args = [
            sys.executable,
            "-m",
            "gunicorn",
            app,
            "--bind",
            f"127.0.0.1:{self.port}",
            "--workers",
            str(workers),
            "--worker-class",
            worker_class,
            "--threads",
            str(threads),
            "--timeout",
            str(timeout),
            "--graceful-timeout",
            str(graceful_timeout),
            "--access-logfile",
            "-",
            "--log-level",
            "info",
        ]
        self._dir = tempfile.TemporaryDirectory(prefix="wecom-gunicorn-")
        self.log_path = Path(self._dir.name) / "gunicorn.log"
        self.process: subprocess.Popen[bytes] | None = None

    #: What each worker logs once it serves.
    booted = "Booting worker"

    def url(self, path: str = "/") -> str:
        """The full URL of ``path`` on this server."""
        return f"http://127.0.0.1:{self.port}{path}"

    def start(self, wait: float = 20.0) -> GunicornServer:
        """Start gunicorn and wait until every worker has booted."""
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            self.args, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        deadline = time.monotonic() + wait
        expected = int(self.args[self.args.index("--workers") + 1])
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited early:\n{self.log()}")
            if self.log().count(self.booted) >= expected and self._accepts():
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"the server did not start in {wait} s:\n{self.log()}")

    def _accepts(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                return True
        except OSError:
            return False

    def worker_pids(self) -> list[int]:
        """The current worker processes' ids."""
        assert self.process is not None
        out = subprocess.run(
            ["ps", "-o", "pid=", "--ppid", str(self.process.pid)],
            capture_output=True,
            text=True,
            check=False,
        ).stdout
        return [int(pid) for pid in out.split()]

    def rss_kb(self) -> dict[int, int]:
        """Resident memory of each worker, in KiB."""
        sizes = {}
        for pid in self.worker_pids():
            status = Path(f"/proc/{pid}/status")
            if status.exists():
                for line in status.read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        sizes[pid] = int(line.split()[1])
        return sizes

    def log(self) -> str:
        """Everything gunicorn and the app wrote so far."""
        return self.log_path.read_text("utf-8", "replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        """Stop the master and its workers (SIGTERM, then SIGKILL)."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)

    def __enter__(self) -> GunicornServer:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
        self._dir.cleanup()


class UvicornServer(GunicornServer):
    """Real uvicorn with ``workers`` processes on 127.0.0.1, for the ASGI tests."""

    booted = "Application startup complete"

    def __init__(self, app: str, *, env: dict[str, str] | None = None, workers: int = 2) -> None:
        super().__init__(app, env=env, workers=workers)
        self.args = [
            sys.executable,
            *("-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(self.port)),
            *("--workers", str(workers), "--log-level", "info", "--timeout-graceful-shutdown", "5"),
        ]
