"""Deferred handlers on a real Celery worker process, with a real Redis as the broker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from celery import Celery

from flask_wecom.celery_deferrer import TASK_NAME, CeleryDeferrer
from flask_wecom.deferral import run_deferred
from tests.support.deferring import send_with_retries
from tests.support.fake_wecom_api import FakeWeComAPI, wecom_settings
from tests.support.vectors import KEY, TOKEN

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def settings(
    fake_wecom_api: FakeWeComAPI, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[str, str]]:
    env = {**wecom_settings(fake_wecom_api.url), "WECOM_REDIS_URL": redis_url}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delitem(sys.modules, "tests.apps.celery_app", raising=False)
    yield env


def queued(redis_url: str) -> int:
    """Tasks waiting in the broker's ``wecom-test`` queue (a Redis list)."""
    with redis.Redis.from_url(redis_url) as client:
        return int(client.llen("wecom-test"))


def test_deferred_handler_runs_once_on_a_celery_worker(
    fake_wecom_api: FakeWeComAPI, settings: dict[str, str]
) -> None:
    from tests.apps.celery_app import app

    send_with_retries(app, "Q4")
    assert queued(settings["WECOM_REDIS_URL"]) == 1  # the retries were answered, not queued
    assert fake_wecom_api.state()["messages"] == []  # nothing ran in the web process

    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "tests.apps.celery_app:celery",
            "worker",
            "-Q",
            "wecom-test",
            "--pool",
            "solo",
            "--without-heartbeat",
            "--without-gossip",
            "--without-mingle",
        ],
        cwd=ROOT,
        env={**os.environ, **settings, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        [sent] = fake_wecom_api.sent_messages(1, timeout=60)
    finally:
        worker.send_signal(signal.SIGTERM)  # warm shutdown
        output, _ = worker.communicate(timeout=30)
    assert sent["touser"] == "zhaoliu"
    content = sent["text"]["content"]
    assert content.startswith("report for Q4 (pid ") and f"pid {os.getpid()})" not in content
    assert queued(settings["WECOM_REDIS_URL"]) == 0
    assert len(fake_wecom_api.state()["messages"]) == 1  # run once
    assert TOKEN not in output and KEY not in output and "Q4" not in output


def test_the_task_is_the_shared_job_registered_once() -> None:
    celery = Celery("t")
    first = CeleryDeferrer(celery, "tests.apps.celery_app:app")
    second = CeleryDeferrer(celery, "tests.apps.other:app", queue="q")
    assert first.task is second.task is celery.tasks[TASK_NAME]
    assert first.task.run is run_deferred


@pytest.mark.parametrize(
    "app_path",
    [
        pytest.param("tests.apps.celery_app", id="no-colon"),
        pytest.param(":app", id="no-module"),
        pytest.param("tests.apps.celery_app:", id="no-variable"),
    ],
)
def test_app_path_is_checked(app_path: str) -> None:
    with pytest.raises(ValueError, match="module:variable"):
        CeleryDeferrer(Celery("t"), app_path)
