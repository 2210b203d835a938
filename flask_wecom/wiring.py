"""Build pipelines and endpoints from settings: what every adapter's configuration comes to.

The Flask extension, ``WeComMiddleware.from_config`` (any WSGI app) and the ASGI
middleware all read the same ``WECOM_*`` keys (:mod:`flask_wecom.settings`) and turn them
into the same objects here, so a Django, Starlette or plain WSGI app is configured exactly
like a Flask one::

    pipeline = build_pipeline(app_settings)
    endpoint = build_endpoint(receiver, endpoint_settings, pipeline.store)
    pipeline.add_endpoint(endpoint)

Framework-free.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Mapping
from typing import Any

from .crypto import WeComCrypto
from .dedup import Deduplicator
from .errors import AESKeyError, ConfigError
from .pipeline import Endpoint, OutcomeHook, Pipeline
from .receivers import Deferrer, Receiver, Scope
from .runner import Runner
from .settings import AppSettings, EndpointSettings, crypto_error, read_settings
from .stores import Store, store_from_url

__all__ = ["build_endpoint", "build_pipeline", "pipeline_from_config"]

logger = logging.getLogger("flask_wecom")


def build_pipeline(settings: AppSettings, *, hooks: Iterable[OutcomeHook] = ()) -> Pipeline:
    """A pipeline with the app-wide settings: store, dedup, threads, caps, replay window."""
    store = store_from_url(settings.redis_url)
    dedup = settings.dedup and Deduplicator(
        store,
        ttl=settings.dedup_ttl,
        lease=settings.dedup_lease,
        wait=settings.dedup_wait,
        write_behind=settings.dedup_write_behind,
    )
    return Pipeline(
        dedup=dedup,
        store=store,
        runner=Runner(settings.threads),
        streams=Runner(settings.threads),
        max_body=settings.max_body,
        max_envelope=settings.max_envelope,
        tolerance=settings.tolerance,
        url_check=settings.url_check,
        hooks=hooks,
    )


def build_endpoint(
    receiver: Receiver,
    settings: EndpointSettings,
    store: Store,
    *,
    name: str | None = None,
    path_prefix: str = "",
    deferrer: Deferrer | None = None,
    scope: Scope = contextlib.nullcontext,
    response_url_origins: tuple[str, ...] | None = None,
) -> Endpoint:
    """The endpoint of ``receiver`` with an endpoint's settings.

    Receive ids per method and the API client follow the receiver's kind
    (:meth:`~flask_wecom.receivers.Receiver.receive_ids`).

    :param response_url_origins: for an AI bot, the origins its ``response_url`` may point to
        (``WECOM_RESPONSE_URL_ORIGINS``); None leaves the receiver's own (WeCom's by default).
    :raises ConfigError: the Token, EncodingAESKey or API base URL is unusable (the message
        names it).
    """
    if response_url_origins is not None:
        from .aibot import BotReceiver  # imports the client module

        if isinstance(receiver, BotReceiver):
            receiver.response_url_origins = response_url_origins
    url_ids, callback_ids = receiver.receive_ids(settings.corp_id, settings.suite_id)
    try:
        credentials = [
            WeComCrypto(token, key, dict.fromkeys((*url_ids, *callback_ids)))
            for token, key in (
                (settings.token, settings.encoding_aes_key),
                *settings.previous_credentials,
            )
        ]
    except (AESKeyError, ValueError) as exc:
        raise crypto_error(settings.prefix, exc) from exc
    return Endpoint(
        path_prefix.rstrip("/") + settings.path,
        credentials,
        "json" if settings.format == "json" else "xml",
        name=name or receiver.name,
        receiver=receiver,
        url_receive_ids=url_ids,
        callback_receive_ids=callback_ids,
        agent_id=settings.agent_id or None,
        deadline=settings.deadline,
        client=_client(receiver, settings, store),
        deferrer=deferrer,
        scope=scope,
    )


def _client(receiver: Receiver, settings: EndpointSettings, store: Store) -> Any:
    """The message/send client for late replies, when the receiver's kind uses one."""
    if not receiver.sends_late_replies_by_api:
        return None
    if not settings.secret or not settings.agent_id:
        logger.warning(
            "%s has no %sSECRET or %sAGENT_ID: a handler that misses the %.1f s deadline, or a "
            "deferred one, cannot send its reply (message/send)",
            receiver.name,
            settings.prefix,
            settings.prefix,
            settings.deadline,
        )
        return None
    from .client import UnsafeURLError, WeComClient  # the client extra (requests)

    try:
        return WeComClient(
            settings.corp_id[0],
            settings.secret,
            agent_id=int(settings.agent_id),
            base_url=settings.api_base_url,
            store=store,
            allow_http=settings.api_allow_http,
        )
    except UnsafeURLError as exc:
        raise ConfigError(
            settings.prefix + "API_BASE_URL",
            f"is refused ({settings.prefix}API_ALLOW_HTTP=true allows http): {exc}",
        ) from None


def pipeline_from_config(
    receivers: Iterable[Receiver],
    config: Mapping[str, Any],
    *,
    hooks: Iterable[OutcomeHook] = (),
) -> Pipeline:
    """A pipeline with one endpoint per receiver, configured from ``config`` (the
    environment, a settings module): each receiver reads its own prefix
    (:attr:`~flask_wecom.receivers.Receiver.config_prefix`), the app-wide keys are
    ``WECOM_*``.

    :raises ConfigError: a key is missing or malformed (the message names it).
    """
    pipeline: Pipeline | None = None
    for receiver in receivers:
        settings, app_settings = read_settings(
            config,
            receiver.config_prefix,
            preset=receiver.preset,
            required=receiver.required,
        )
        if pipeline is None:
            pipeline = build_pipeline(app_settings, hooks=hooks)
        pipeline.add_endpoint(
            build_endpoint(
                receiver,
                settings,
                pipeline.store,
                response_url_origins=app_settings.response_url_origins,
            )
        )
    if pipeline is None:
        raise ValueError("pipeline_from_config needs at least one receiver")
    return pipeline
