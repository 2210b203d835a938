"""The example's gunicorn config routes the ``flask_wecom`` logger (and the app's own) into
gunicorn's error log, one line per record, with the time, the level and the worker's pid."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone

import pytest
import requests

from flask_wecom.testing import CallbackSigner, Credentials, SignedRequest
from harness.web_servers import GunicornServer

pytestmark = pytest.mark.slow

CREDENTIALS = Credentials.generate()

#: gunicorn's error-log line, ``[time] [pid] [LEVEL] logger: message``.
LINE = re.compile(
    r"^\[(?P<time>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4})\] \[(?P<pid>\d+)\] "
    r"\[(?P<level>[A-Z]+)\] (?P<logger>[\w.]+): (?P<message>.*)$",
    re.M,
)


@pytest.fixture(scope="module")
def server() -> Iterator[GunicornServer]:
    """The example app with its own gunicorn.conf.py (as scripts/demo.sh runs it)."""
    env = {**CREDENTIALS.config, "GUNICORN_CMD_ARGS": "--config example_app/gunicorn.conf.py"}
    with GunicornServer("example_app.app:app", env=env, workers=2) as running:
        yield running


def post(server: GunicornServer, request: SignedRequest) -> int:
    response = requests.post(server.url(request.url("/wecom")), data=request.body, timeout=10)
    return response.status_code


def records(server: GunicornServer, logger: str, message: str) -> list[re.Match[str]]:
    """The log lines of ``logger`` whose message starts with ``message``."""
    return [
        m
        for m in LINE.finditer(server.log())
        if m["logger"] == logger and m["message"].startswith(message)
    ]


@pytest.mark.parametrize(
    ("request_of", "status", "logger", "level", "message"),
    [
        pytest.param(
            lambda s: s.text("hello", signature="0" * 40),
            403,
            "flask_wecom",
            "WARNING",
            "refused POST wecom from 127.0.0.1: signature (-40001)",
            id="refusal-warning",
        ),
        pytest.param(
            lambda s: s.change_contact("create_user", {"UserID": "lisi"}),
            200,
            "example_app",
            "INFO",
            "contact change: create_user",
            id="app-info",
        ),
    ],
)
def test_a_record_is_one_gunicorn_error_log_line(
    server: GunicornServer,
    request_of: Callable[[CallbackSigner], SignedRequest],
    status: int,
    logger: str,
    level: str,
    message: str,
) -> None:
    signer = CREDENTIALS.signer()
    before = len(records(server, logger, message))
    assert post(server, request_of(signer)) == status
    lines = records(server, logger, message)[before:]
    assert len(lines) == 1, server.log()  # once: no second handler, no propagation twice
    (line,) = lines
    assert line["level"] == level
    assert int(line["pid"]) in server.worker_pids()
    logged = datetime.strptime(line["time"], "%Y-%m-%d %H:%M:%S %z")
    assert abs(datetime.now(timezone.utc) - logged) < timedelta(minutes=1)


def test_nothing_secret_reaches_the_log(server: GunicornServer) -> None:
    signer = CREDENTIALS.signer()
    assert post(server, signer.text("my salary is 12345", signature="0" * 40)) == 403
    log = server.log()
    assert CREDENTIALS.token not in log and CREDENTIALS.encoding_aes_key not in log
    assert "12345" not in log
