"""Prometheus metrics from the outcome hooks (the ``prometheus`` extra: ``prometheus_client``).

::

    from flask_wecom.metrics import PrometheusMetrics

    metrics = PrometheusMetrics()
    wecom = WeCom(app, hooks=[metrics])
    app.add_url_rule("/metrics", "metrics", metrics.flask_view)

Metrics (``wecom_`` prefix by default); labels hold only names from a small fixed set, never
an id, a user, plaintext or a secret:

=====================================  =================================================
``wecom_callbacks_total``              requests to an endpoint, by ``endpoint``,
                                       ``outcome`` (verified, accepted, replayed, waited,
                                       refused), ``reason`` (of a refusal: signature,
                                       timestamp, ...) and ``dedup`` (first, replay,
                                       waited, bypass; "" when off)
``wecom_handler_seconds``              histogram of handler time of accepted callbacks
``wecom_late_replies_total``           accepted callbacks whose handler took the whole
                                       deadline: the reply goes through message/send
``wecom_api_errors_total``             WeCom API answers with a non-zero errcode, by
                                       ``path`` and ``errcode``
``wecom_token_refreshes_total``        access tokens fetched (``gettoken``)
=====================================  =================================================

Under gunicorn with several workers, set ``PROMETHEUS_MULTIPROC_DIR`` to an empty directory
before the workers start (prometheus_client's multiprocess mode): :meth:`flask_wecom.metrics.
PrometheusMetrics.exposition` then adds up every worker's values. contrib/grafana/ has a
dashboard for these metrics.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from . import client

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from flask_wecom import Outcome

__all__ = ["HANDLER_BUCKETS", "PrometheusMetrics"]

#: Histogram buckets of handler seconds, up to WeCom's 5-second limit.
HANDLER_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 4.0, 5.0)


class PrometheusMetrics:
    """An outcome hook (and WeCom API answer hook) that counts into Prometheus metrics.

    Calling it with an :class:`~flask_wecom.pipeline.Outcome` records one request. Building it
    also registers :meth:`api_answer` in :data:`flask_wecom.client.ANSWER_HOOKS`, so the API
    clients of the process count their errors and token refreshes; :meth:`close` removes it.

    :param registry: where the metrics live (default: prometheus_client's global registry).
    :param namespace: the metric name prefix.
    :param late_after: handler seconds from which an accepted callback counts as late: the
        endpoint's deadline (``WECOM_DEADLINE``, 4 s by default), after which the handler's
        reply goes through message/send.
    """

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        *,
        namespace: str = "wecom",
        late_after: float = 4.0,
    ) -> None:
        try:
            import prometheus_client as prometheus
        except ImportError as e:
            raise ImportError(
                "PrometheusMetrics needs prometheus_client: pip install 'flask-wecom[prometheus]'"
            ) from e
        self._prometheus: Any = prometheus
        self.registry = registry if registry is not None else prometheus.REGISTRY
        self.late_after = late_after
        common: dict[str, Any] = {"namespace": namespace, "registry": self.registry}
        self.callbacks = prometheus.Counter(
            "callbacks",
            "Requests to WeCom endpoints, by how they ended",
            ["endpoint", "outcome", "reason", "dedup"],
            **common,
        )
        self.handler_seconds = prometheus.Histogram(
            "handler_seconds",
            "Seconds spent in the handler of accepted callbacks",
            ["endpoint"],
            buckets=HANDLER_BUCKETS,
            **common,
        )
        self.late_replies = prometheus.Counter(
            "late_replies",
            "Accepted callbacks whose handler took the whole deadline (reply via message/send)",
            ["endpoint"],
            **common,
        )
        self.api_errors = prometheus.Counter(
            "api_errors", "WeCom API answers with a non-zero errcode", ["path", "errcode"], **common
        )
        self.token_refreshes = prometheus.Counter(
            "token_refreshes", "Access tokens fetched from the WeCom API (gettoken)", **common
        )
        client.ANSWER_HOOKS.append(self.api_answer)

    def __call__(self, outcome: Outcome) -> None:
        """Record one request to an endpoint (the outcome hook)."""
        self.callbacks.labels(
            outcome.endpoint, outcome.outcome, outcome.reason or "", outcome.dedup or ""
        ).inc()
        seconds = outcome.handler_seconds
        if seconds is not None:
            self.handler_seconds.labels(outcome.endpoint).observe(seconds)
            if seconds >= self.late_after:
                self.late_replies.labels(outcome.endpoint).inc()

    def api_answer(self, path: str, errcode: int) -> None:
        """Record one WeCom API answer (the :data:`~flask_wecom.client.ANSWER_HOOKS` hook)."""
        if errcode != 0:
            self.api_errors.labels(path, str(errcode)).inc()
        elif path == "/cgi-bin/gettoken":
            self.token_refreshes.inc()

    def close(self) -> None:
        """Stop counting API answers (the metrics stay registered)."""
        if self.api_answer in client.ANSWER_HOOKS:
            client.ANSWER_HOOKS.remove(self.api_answer)

    def exposition(self) -> tuple[bytes, str]:
        """The metrics in Prometheus' text format and its content type; with
        ``PROMETHEUS_MULTIPROC_DIR`` set, every worker's values added up."""
        prometheus = self._prometheus
        registry = self.registry
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            from prometheus_client import multiprocess

            registry = prometheus.CollectorRegistry()
            collector: Any = multiprocess.MultiProcessCollector
            collector(registry)
        return prometheus.generate_latest(registry), prometheus.CONTENT_TYPE_LATEST

    def flask_view(self) -> Any:
        """A Flask view that answers :meth:`exposition` (``app.add_url_rule("/metrics", ...)``)."""
        from flask import Response

        body, content_type = self.exposition()
        return Response(body, content_type=content_type)
