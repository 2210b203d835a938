"""One owner per bot across processes: real ``flask-wecom longconn`` processes, a real
redis-server, the fake long-connection server; kills, SIGTERM, an outside client.

The processes run tests/support/longconn_app.py, which logs every handler start and finish with
its pid and msgid, so "handled once" is counted from what really ran.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.sync.client import connect

from flask_wecom.replies import StreamReply
from flask_wecom.testing import (
    CallbackSigner,
    WeComTestClient,
    generate_encoding_aes_key,
    generate_token,
)
from flask_wecom.testing_longconn import ERR_INVALID_REQ_ID, FakeLongConnServer
from harness.web_servers import GunicornServer

pytestmark = pytest.mark.slow

BOT, SECRET = "aibLEASEBOT", "LEASE_SECRET"
LEASE_TTL = 1.0


class Group:
    """Contending ``flask-wecom longconn`` processes for one bot."""

    def __init__(self, tmp_path: Path, server: FakeLongConnServer, redis_url: str) -> None:
        self.server, self.tmp_path = server, tmp_path
        self.log = tmp_path / "handled.log"
        self.log.touch()
        self.env = {
            **os.environ,
            "WECOM_AIBOT_TOKEN": generate_token(),
            "WECOM_AIBOT_ENCODING_AES_KEY": generate_encoding_aes_key(),
            "WECOM_AIBOT_BOT_ID": BOT,
            "WECOM_AIBOT_LONGCONN_SECRET": SECRET,
            "WECOM_AIBOT_LONGCONN_URL": server.url,
            "WECOM_REDIS_URL": redis_url,
            "WECOM_DEDUP_LEASE": "0.5",
            "LONGCONN_TEST_LOG": str(self.log),
        }
        self.processes: dict[int, subprocess.Popen[bytes]] = {}

    def spawn(self, count: int = 1) -> None:
        for _ in range(count):
            number = len(self.processes)
            with (self.tmp_path / f"process-{number}.err").open("wb") as stderr:
                process = subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "flask_wecom",
                        "longconn",
                        "--app",
                        "tests.support.longconn_app:app",
                        "--lease-ttl",
                        str(LEASE_TTL),
                        "--standby-poll",
                        "0.1",
                        "--drain",
                        "5",
                    ],
                    env=self.env,
                    stdout=subprocess.DEVNULL,
                    stderr=stderr,
                )
            self.processes[process.pid] = process

    def wait_ready(self) -> None:
        """Wait until every live process holds the bot or stands by (imports take a while)."""

        def ready() -> bool:
            return all(
                "holds the long connection" in self.stderr(pid) or "standing by" in self.stderr(pid)
                for pid, process in self.processes.items()
                if process.poll() is None
            )

        self.server.wait_for(ready, timeout=30)
        self.server.wait_for(lambda: self.server.owners() == 1, timeout=10)

    def ask(self, text: str = "who", **options: object) -> tuple[str, int]:
        """Push a text message; return its req_id and the pid that answered it."""
        req_id = self.server.push_message(text, **options)  # type: ignore[arg-type]
        assert req_id is not None, "nobody held the bot"
        answer = self.server.wait_for(lambda: self.server.stream_text(req_id), timeout=10)
        return req_id, int(answer.rsplit(" ", 1)[1])

    def handled(self, step: str = "done") -> Counter[str]:
        """How often each msgid reached ``step`` in any process."""
        lines = [line.split() for line in self.log.read_text().splitlines()]
        return Counter(msgid for s, _, msgid in lines if s == step)

    def stderr(self, pid: int) -> str:
        number = list(self.processes).index(pid)
        return (self.tmp_path / f"process-{number}.err").read_text()

    def stop_all(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.kill()
            process.wait(10)


@pytest.fixture
def server() -> Iterator[FakeLongConnServer]:
    with FakeLongConnServer(BOT, SECRET, displaced_close_delay=0.3) as fake:
        yield fake


@pytest.fixture
def group(tmp_path: Path, server: FakeLongConnServer, redis_url: str) -> Iterator[Group]:
    contenders = Group(tmp_path, server, redis_url)
    try:
        yield contenders
    finally:
        contenders.stop_all()


def test_two_then_five_contenders_keep_one_connection_through_kills_and_stops(
    group: Group, server: FakeLongConnServer
) -> None:
    group.spawn(2)
    group.wait_ready()
    group.spawn(3)
    group.wait_ready()
    time.sleep(3 * LEASE_TTL)  # several renewals: nobody else subscribes
    assert (server.subscribes, server.kicks) == (1, 0)
    _, holder = group.ask("first", msgid="MSG_FIRST")
    time.sleep(0.2)  # recorded as done (see test_a_handler_killed_with_its_holder_is_rerun)

    group.processes[holder].kill()
    killed = time.monotonic()
    server.wait_for(lambda: server.subscribes == 2, timeout=10)
    assert time.monotonic() - killed < LEASE_TTL + 2  # a standby took over within seconds
    group.spawn()  # restarted, as a supervisor would
    _, successor = group.ask("second")
    assert successor != holder
    server.push_message("first again", msgid="MSG_FIRST")  # redelivered to the new holder

    req_id = server.push_message("slow 1", msgid="MSG_DRAIN")
    server.wait_for(lambda: group.handled("start")["MSG_DRAIN"] == 1)
    group.wait_ready()
    group.processes[successor].send_signal(signal.SIGTERM)
    answer = server.wait_for(lambda: server.stream_text(req_id or ""), timeout=10)
    assert answer == f"slow 1 from {successor}"  # finished by the stopping holder
    stopped = time.monotonic()
    server.wait_for(lambda: server.subscribes == 3, timeout=10)
    assert time.monotonic() - stopped < 1.5  # then handed over at once
    assert group.processes[successor].wait(10) == 0
    group.ask("third")

    assert server.kicks == 0 and server.max_owners == 1
    assert set(group.handled().values()) == {1} and len(group.handled()) == 4
    assert all(s.errcode == 0 for s in server.sent())


def test_a_handler_killed_with_its_holder_is_rerun_by_the_next(
    group: Group, server: FakeLongConnServer
) -> None:
    group.spawn(3)
    group.wait_ready()
    kill_mid_handler(group, server, bound=False)
    kill_mid_handler(group, server, bound=True)  # WeCom may bind req_ids (unconfirmed)
    assert server.kicks == 0 and server.max_owners == 1


def kill_mid_handler(group: Group, server: FakeLongConnServer, *, bound: bool) -> None:
    """SIGKILL the holder while a handler runs: the next holder re-runs it and answers once."""
    server.bind_req_id = bound
    _, holder = group.ask("who")
    msgid = f"MSG_SLOW_{bound}"
    req_id = server.push_message("slow 1.5", msgid=msgid)
    server.wait_for(lambda: group.handled("start")[msgid] == 1)
    group.processes[holder].kill()
    if bound:  # the dead connection's req_id is refused: the answer is pushed instead
        pushed = server.wait_for(lambda: server.sent("aibot_send_msg"), timeout=15)
        assert pushed[-1].body["markdown"]["content"].startswith("slow 1.5 from ")
        assert [s.errcode for s in server.sent(req_id=req_id)] == [ERR_INVALID_REQ_ID]
    else:
        answer = server.wait_for(lambda: server.stream_text(req_id or ""), timeout=15)
        assert int(answer.rsplit(" ", 1)[1]) != holder
        assert len(server.sent(req_id=req_id)) == 1
    assert group.handled("start")[msgid] == 2  # the dead run and the re-run
    assert group.handled()[msgid] == 1


def test_an_outside_client_stops_the_group_without_a_kick_loop(
    group: Group, server: FakeLongConnServer
) -> None:
    group.spawn(2)
    group.wait_ready()
    _, holder = group.ask("who")
    with connect(server.url) as outsider:
        outsider.send(
            '{"cmd": "aibot_subscribe", "headers": {"req_id": "probe"}, '
            f'"body": {{"bot_id": "{BOT}", "secret": "{SECRET}"}}}}'
        )
        assert group.processes[holder].wait(10) == 1
        time.sleep(3 * LEASE_TTL)  # the standby stays off the bot
        assert (server.subscribes, server.kicks) == (2, 1)
    errors = [line for line in group.stderr(holder).splitlines() if " ERROR " in line]
    assert len(errors) == 1 and "disconnected_event" in errors[0]


def test_beside_gunicorn_one_worker_holds_the_bot_and_all_serve_the_webhook(
    group: Group, server: FakeLongConnServer
) -> None:
    env = {**group.env, "GUNICORN_CMD_ARGS": "-c tests/support/longconn_gunicorn.py"}
    with GunicornServer("tests.support.longconn_app:app", env=env, workers=2) as gunicorn:
        server.wait_for(lambda: server.owners() == 1, timeout=20)
        time.sleep(3 * LEASE_TTL)
        assert (server.subscribes, server.kicks) == (1, 0)
        _, holder = group.ask("over the long connection")
        assert holder in gunicorn.worker_pids()
        signer = CallbackSigner(
            env["WECOM_AIBOT_TOKEN"], env["WECOM_AIBOT_ENCODING_AES_KEY"], "", format="json"
        )
        webhook = WeComTestClient(gunicorn.url(""), signer, "/aibot")
        reply = webhook.send(signer.aibot_text("over the webhook")).reply
        assert isinstance(reply, StreamReply)
        assert reply.content.startswith("over the webhook from ")
    server.wait_for(lambda: server.owners() == 0, timeout=10)  # stopped with the workers


@pytest.mark.parametrize(
    ("target", "unset"),
    [
        pytest.param("tests.support.longconn_app:plain", (), id="bare-receiver"),
        pytest.param(
            "tests.support.longconn_app:app",
            ("WECOM_AIBOT_TOKEN", "WECOM_AIBOT_ENCODING_AES_KEY"),
            id="flask-app-without-webhook-keys",
        ),
    ],
)
def test_the_command_runs_a_bot_and_stops_on_sigterm(
    group: Group, server: FakeLongConnServer, target: str, unset: tuple[str, ...]
) -> None:
    dropped = {"WECOM_REDIS_URL", *unset}  # one process, memory
    env = {k: v for k, v in group.env.items() if k not in dropped}
    command = [sys.executable, "-m", "flask_wecom", "longconn", "--app", target]
    with subprocess.Popen(command, env=env, stderr=subprocess.PIPE) as process:
        server.wait_for(lambda: server.owners() == 1, timeout=30)
        _, pid = group.ask("bare")
        assert pid == process.pid
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0
        assert process.stderr is not None and b"Traceback" not in process.stderr.read()


@pytest.mark.parametrize(
    ("target", "drop", "message"),
    [
        pytest.param(
            "tests.support.longconn_app:plain", "WECOM_AIBOT_BOT_ID", "BOT_ID", id="no-bot-id"
        ),
        pytest.param("tests.support.longconn_app:nothing", "", "cannot load", id="no-such-name"),
        pytest.param("no_such_module:app", "", "cannot load", id="no-such-module"),
        pytest.param(
            "tests.support.longconn_app:app", "WECOM_AIBOT_TOKEN", "TOKEN", id="app-config-error"
        ),
        pytest.param("tests.support.longconn_app:note", "", "neither", id="not-a-bot"),
    ],
)
def test_the_command_refuses_bad_settings_with_a_usage_error(
    group: Group, target: str, drop: str, message: str
) -> None:
    env = {k: v for k, v in group.env.items() if k != drop}
    result = subprocess.run(
        [sys.executable, "-m", "flask_wecom", "longconn", "--app", target],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr
