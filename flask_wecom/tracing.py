"""OpenTelemetry traces from the outcome hooks (the ``otel`` extra: ``opentelemetry-api``).

::

    from flask_wecom.tracing import OpenTelemetryTracing

    tracing = OpenTelemetryTracing()  # the global tracer provider, or pass one
    wecom = WeCom(app, hooks=[tracing])
    app.wsgi_app = tracing.wsgi(app.wsgi_app, paths={"/wecom"})  # optional, see below

Each request to an endpoint becomes a ``wecom.callback`` span with the attributes
``wecom.endpoint``, ``wecom.outcome``, ``wecom.reason`` (refusals), ``wecom.dedup``,
``wecom.credential`` (the index of the credential set) and ``http.response.status_code``;
an accepted callback's handler is its child span ``wecom.handler``, timed by the handler's
seconds. Spans never carry the plaintext, message or user ids, tokens or keys: only what an
:class:`~flask_wecom.pipeline.Outcome` says.

With :meth:`OpenTelemetryTracing.wsgi` around the app, the callback span covers the whole
request (verification, decryption, dedup, handler, sealing) and is the current span while the
handler runs, so spans the handler opens (an HTTP call, a database query) are its children.
Without it, the hook makes the span when the request is answered, as long as its handler.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Collection, Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

    from flask_wecom import Outcome

__all__ = ["OpenTelemetryTracing"]

#: The span :meth:`OpenTelemetryTracing.wsgi` opened for the request being handled.
_REQUEST_SPAN: contextvars.ContextVar[Any] = contextvars.ContextVar("flask_wecom.span")


class OpenTelemetryTracing:
    """An outcome hook that records a span per callback, with the handler as a child span.

    :param tracer_provider: an OpenTelemetry ``TracerProvider`` (default: the global one).
    """

    def __init__(self, tracer_provider: Any = None) -> None:
        try:
            from opentelemetry import trace
        except ImportError as e:
            raise ImportError(
                "OpenTelemetryTracing needs opentelemetry-api: pip install 'flask-wecom[otel]'"
            ) from e
        self._trace: Any = trace
        self._tracer: Any = trace.get_tracer("flask_wecom", tracer_provider=tracer_provider)

    def __call__(self, outcome: Outcome) -> None:
        """Record one request to an endpoint (the outcome hook)."""
        now = time.time_ns()
        handler_ns = round((outcome.handler_seconds or 0.0) * 1e9)
        span = _REQUEST_SPAN.get(None)
        own = span is None
        if own:
            span = self._tracer.start_span(
                "wecom.callback", kind=self._trace.SpanKind.SERVER, start_time=now - handler_ns
            )
        attributes = {
            "wecom.endpoint": outcome.endpoint,
            "wecom.outcome": outcome.outcome,
            "http.response.status_code": outcome.status,
            "wecom.reason": outcome.reason,
            "wecom.dedup": outcome.dedup,
            "wecom.credential": outcome.credential,
        }
        span.set_attributes({k: v for k, v in attributes.items() if v is not None})
        if outcome.status >= 500:
            span.set_status(self._trace.StatusCode.ERROR)
        if outcome.handler_seconds is not None:
            handler = self._tracer.start_span(
                "wecom.handler",
                context=self._trace.set_span_in_context(span),
                start_time=now - handler_ns,
                attributes={"wecom.endpoint": outcome.endpoint},
            )
            handler.end(end_time=now)
        if own:
            span.end(end_time=now)

    def wsgi(self, app: WSGIApplication, paths: Collection[str]) -> WSGIApplication:
        """Wrap a WSGI app so that each request to one of ``paths`` (the endpoints' paths)
        runs inside its ``wecom.callback`` span; other requests pass untouched."""
        tracer, server = self._tracer, self._trace.SpanKind.SERVER

        def traced(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
            if environ.get("PATH_INFO") not in paths:
                return app(environ, start_response)
            with tracer.start_as_current_span("wecom.callback", kind=server) as span:
                token = _REQUEST_SPAN.set(span)
                try:
                    return app(environ, start_response)
                finally:
                    _REQUEST_SPAN.reset(token)

        return traced
