"""OpenTelemetry spans per callback, caught by the SDK's in-memory exporter."""

from __future__ import annotations

import pytest
from flask import Flask
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from flask_wecom import WeCom
from flask_wecom.messages import Message, parse_message
from flask_wecom.testing import CallbackSigner, WeComTestClient
from flask_wecom.tracing import OpenTelemetryTracing
from tests.support.vectors import CORP_ID, KEY, TOKEN


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


def make_app(exporter: InMemorySpanExporter, *, wrap: bool) -> Flask:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing = OpenTelemetryTracing(provider)
    tracer = provider.get_tracer("app")
    app = Flask(__name__)
    app.config.update(
        {"WECOM_TOKEN": TOKEN, "WECOM_ENCODING_AES_KEY": KEY, "WECOM_CORP_ID": CORP_ID}
    )
    wecom = WeCom(app, hooks=[tracing])
    if wrap:
        app.wsgi_app = tracing.wsgi(app.wsgi_app, paths={"/wecom"})  # type: ignore[method-assign]

    @wecom.message("text")
    def answer(message: Message) -> str:
        with tracer.start_as_current_span("app.lookup"):
            return f"re: {message.content}"

    return app


def by_name(spans: tuple[ReadableSpan, ...], name: str) -> list[ReadableSpan]:
    return [span for span in spans if span.name == name]


@pytest.mark.parametrize(
    "wrap", [pytest.param(True, id="wsgi-wrapped"), pytest.param(False, id="hook-only")]
)
def test_a_span_per_callback_with_the_handler_as_child(
    exporter: InMemorySpanExporter, wrap: bool
) -> None:
    app = make_app(exporter, wrap=wrap)
    signer = CallbackSigner(TOKEN, KEY, CORP_ID)
    client = WeComTestClient(app, signer)
    first = signer.text("secret plan", from_user="zhangsan")
    client.send(first)
    client.send(signer.resend(first))
    client.send(signer.text("x", signature="0" * 40))

    spans = exporter.get_finished_spans()
    accepted, replayed, refused = by_name(spans, "wecom.callback")
    assert dict(accepted.attributes or {}) == {
        "wecom.endpoint": "wecom",
        "wecom.outcome": "accepted",
        "http.response.status_code": 200,
        "wecom.dedup": "first",
        "wecom.credential": 0,
    }
    assert accepted.kind is trace.SpanKind.SERVER
    assert dict(replayed.attributes or {})["wecom.dedup"] == "replay"
    assert dict(refused.attributes or {})["wecom.reason"] == "signature"
    assert dict(refused.attributes or {})["http.response.status_code"] == 403

    [handler] = by_name(spans, "wecom.handler")  # only the accepted callback ran a handler
    assert handler.parent is not None and handler.parent.span_id == accepted.context.span_id
    assert accepted.start_time <= handler.start_time <= handler.end_time <= accepted.end_time
    [lookup] = by_name(spans, "app.lookup")
    if wrap:  # the handler's own spans are children of the callback span
        assert lookup.parent is not None and lookup.parent.span_id == accepted.context.span_id
        assert lookup.context.trace_id == accepted.context.trace_id

    everything = repr([(span.name, dict(span.attributes or {})) for span in spans])
    msg_id = str(parse_message(first.plaintext).msg_id)
    for secret in ("secret plan", "zhangsan", msg_id, TOKEN, KEY):
        assert secret not in everything


def test_other_paths_are_not_traced(exporter: InMemorySpanExporter) -> None:
    app = make_app(exporter, wrap=True)
    assert app.test_client().get("/elsewhere").status_code == 404
    assert exporter.get_finished_spans() == ()
