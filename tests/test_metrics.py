"""Prometheus metrics: a simulated conversation, then a scrape of /metrics."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from flask_wecom import Outcome, WeCom, client
from flask_wecom.messages import Message
from flask_wecom.metrics import PrometheusMetrics
from flask_wecom.testing import CallbackSigner, WeComTestClient
from tests.support.fake_wecom_api import FAKE_CORP_ID, FAKE_SECRET, FakeWeComAPI, wecom_settings
from tests.support.vectors import KEY, TOKEN

ROOT = Path(__file__).resolve().parents[1]

#: (metric sample name, labels) -> value, as scraped.
Scrape = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture
def metrics() -> Iterator[PrometheusMetrics]:
    metrics = PrometheusMetrics(CollectorRegistry(), late_after=0.3)
    yield metrics
    metrics.close()


@pytest.fixture
def app(fake_wecom_api: FakeWeComAPI, metrics: PrometheusMetrics) -> Flask:
    app = Flask(__name__)
    app.config.update({**wecom_settings(fake_wecom_api.url), "WECOM_DEADLINE": 0.3})
    wecom = WeCom(app, hooks=[metrics])
    app.add_url_rule("/metrics", "metrics", metrics.flask_view)

    @wecom.message("text")
    def answer(message: Message) -> str:
        if message.content == "slow":
            time.sleep(0.5)
        return f"re: {message.content}"

    return app


def scrape(app: Flask) -> tuple[Scrape, str]:
    response = app.test_client().get("/metrics")
    assert response.status_code == 200
    assert response.content_type.startswith("text/plain")
    text = response.get_data(as_text=True)
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    return samples, text


def callbacks(
    outcome: str, reason: str = "", dedup: str = ""
) -> tuple[str, tuple[tuple[str, str], ...]]:
    labels = {"endpoint": "wecom", "outcome": outcome, "reason": reason, "dedup": dedup}
    return "wecom_callbacks_total", tuple(sorted(labels.items()))


def test_a_conversation_is_counted(app: Flask, fake_wecom_api: FakeWeComAPI) -> None:
    signer = CallbackSigner(TOKEN, KEY, FAKE_CORP_ID)
    wecom = WeComTestClient(app, signer)
    assert wecom.verify_url().status == 200
    first = signer.text("secret plan", from_user="zhangsan")
    assert wecom.send(first).status == 200
    assert wecom.send(signer.resend(first)).status == 200  # WeCom's retry: replayed
    assert wecom.send(signer.text("x", signature="0" * 40)).status == 403
    assert wecom.send_text("slow").status == 200  # late: its reply goes by message/send
    fake_wecom_api.sent_messages(1)
    fake_wecom_api.revoke_tokens()
    assert wecom.send_text("slow").status == 200  # 40014, a new token, then sent
    fake_wecom_api.sent_messages(2)

    samples, text = scrape(app)
    assert samples[callbacks("verified")] == 1
    assert samples[callbacks("accepted", dedup="first")] == 3
    assert samples[callbacks("replayed", dedup="replay")] == 1
    assert samples[callbacks("refused", reason="signature")] == 1
    assert samples["wecom_handler_seconds_count", (("endpoint", "wecom"),)] == 3
    assert samples["wecom_handler_seconds_bucket", (("endpoint", "wecom"), ("le", "0.1"))] == 1
    assert samples["wecom_late_replies_total", (("endpoint", "wecom"),)] == 2
    errors = (("errcode", "40014"), ("path", "/cgi-bin/message/send"))
    assert samples["wecom_api_errors_total", errors] == 1
    assert samples["wecom_token_refreshes_total", ()] == 2
    for secret in ("secret plan", "zhangsan", TOKEN, KEY, FAKE_SECRET):
        assert secret not in text


def test_close_stops_counting_api_answers(metrics: PrometheusMetrics) -> None:
    assert metrics.api_answer in client.ANSWER_HOOKS
    metrics.close()
    metrics.close()  # twice is fine
    assert metrics.api_answer not in client.ANSWER_HOOKS


def test_multiprocess_mode_adds_up_the_workers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With PROMETHEUS_MULTIPROC_DIR, the exposition reads every worker's files."""
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    worker = (
        "from flask_wecom.metrics import PrometheusMetrics\n"
        "from flask_wecom import Outcome\n"
        "PrometheusMetrics()(Outcome('wecom', 'accepted', 200, dedup='first'))\n"
    )
    for _ in range(2):
        subprocess.run([sys.executable, "-c", worker], check=True, timeout=60)
    metrics = PrometheusMetrics(CollectorRegistry())
    body, _ = metrics.exposition()
    metrics.close()
    line = 'wecom_callbacks_total{dedup="first",endpoint="wecom",outcome="accepted",reason=""} 2.0'
    assert line in body.decode()


def test_the_example_app_serves_its_metrics(monkeypatch: pytest.MonkeyPatch) -> None:
    """The example app counts into the global registry; compare scrapes before and after."""
    for name, value in {"WECOM_TOKEN": TOKEN, "WECOM_ENCODING_AES_KEY": KEY}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("WECOM_CORP_ID", FAKE_CORP_ID)
    from example_app.app import app  # imported once per process: the registry is global

    config = app.config  # another test may have imported it with other credentials
    signer = CallbackSigner(
        config["WECOM_TOKEN"], config["WECOM_ENCODING_AES_KEY"], config["WECOM_CORP_ID"]
    )
    before, _ = scrape(app)
    reply = WeComTestClient(app, signer).send_text("help").reply
    assert reply is not None
    after, _ = scrape(app)
    key = callbacks("accepted", dedup="first")
    assert after[key] - before.get(key, 0.0) == 1


def test_the_grafana_dashboard_queries_only_exported_metrics(metrics: PrometheusMetrics) -> None:
    dashboard = json.loads((ROOT / "contrib" / "grafana" / "flask-wecom.json").read_text())
    queried = {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"\bwecom_\w+", target["expr"])
    }
    metrics(Outcome("wecom", "accepted", 200, handler_seconds=1.0, dedup="first"))  # late
    metrics.api_answer("/cgi-bin/message/send", 40014)
    exported = {s.name for family in metrics.registry.collect() for s in family.samples}
    assert queried and queried <= exported
