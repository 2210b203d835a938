"""Deferred handlers on a real RQ worker process, over a real Redis."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from flask_wecom.rq import RQDeferrer
from tests.support.deferring import send_with_retries
from tests.support.fake_wecom_api import (
    FakeWeComAPI,
    wecom_settings,
)
from tests.support.vectors import KEY, TOKEN

ROOT = Path(__file__).resolve().parents[1]


def test_deferred_handler_runs_on_an_rq_worker(
    fake_wecom_api: FakeWeComAPI, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {
        **wecom_settings(fake_wecom_api.url),
        "WECOM_REDIS_URL": redis_url,
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delitem(sys.modules, "tests.apps.rq_app", raising=False)
    from tests.apps.rq_app import app, queue

    send_with_retries(app, "Q3")
    assert len(queue) == 1  # the retries were answered, not queued
    assert fake_wecom_api.state()["messages"] == []  # nothing ran in the web process

    worker = subprocess.run(
        [
            str(Path(sys.executable).parent / "rq"),
            "worker",
            "wecom-test",
            "--burst",
            "--url",
            redis_url,
        ],
        cwd=ROOT,
        env={**os.environ, **env, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert worker.returncode == 0, worker.stderr
    [sent] = fake_wecom_api.sent_messages(1)
    assert len(queue) == 0
    assert sent["touser"] == "zhaoliu"
    content = sent["text"]["content"]
    assert content.startswith("report for Q3 (pid ") and f"pid {os.getpid()})" not in content
    assert TOKEN not in worker.stdout + worker.stderr and KEY not in worker.stdout + worker.stderr


def test_app_path_is_checked() -> None:
    with pytest.raises(ValueError, match="module:variable"):
        RQDeferrer(None, "tests.apps.rq_app")  # type: ignore[arg-type]
