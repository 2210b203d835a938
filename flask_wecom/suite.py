"""Third-party suites (第三方应用): the command callback URL (指令回调), keyed by InfoType.

:class:`SuiteReceiver` answers every accepted callback with the plain text ``success``,
as the docs require, whatever the handlers return, and keeps the latest ``suite_ticket``
(pushed every 10 minutes) in the pipeline's store before any handler runs. Receive ids
depend on the method: URL verification (GET) carries the provider's CorpID, command
callbacks (POST) the SuiteID (see :class:`~flask_wecom.pipeline.Endpoint`). No web imports.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from .receivers import Call, Receiver
from .replies import Reply
from .stores import Store

__all__ = ["SuiteReceiver"]


class SuiteReceiver(Receiver):
    """A suite's command callback URL; handle ``@suite.info_type("create_auth")`` and others.

    The suite_ticket is kept under the ``SuiteId`` the (signed) callback names, so one
    store serves several suites.
    """

    acknowledge: ClassVar[str] = "success"
    default_name: ClassVar[str] = "suite"
    config_prefix: ClassVar[str] = "WECOM_SUITE_"
    preset: ClassVar[Mapping[str, Any]] = {"PATH": "/suite"}
    required: ClassVar[tuple[str, ...]] = ("TOKEN", "ENCODING_AES_KEY", "CORP_ID", "SUITE_ID")
    #: Suites answer "success"; their API needs suite tokens, not message/send.
    sends_late_replies_by_api: ClassVar[bool] = False
    #: How long a suite_ticket is kept: WeCom's tickets are valid 30 minutes.
    ticket_ttl: ClassVar[float] = 1800.0

    def receive_ids(
        self, corp_ids: tuple[str, ...], suite_id: str
    ) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """The provider's CorpID for URL verification, the SuiteID for command callbacks."""
        return corp_ids, (suite_id,)

    def before_handler(self, call: Call) -> Reply | None:
        """Keep the latest suite_ticket in the store, then route as usual."""
        message = call.message
        ticket = getattr(message, "suite_ticket", None)
        suite_id = getattr(message, "suite_id", None)
        if message.info_type == "suite_ticket" and ticket and suite_id:
            call.store.set(_ticket_key(str(suite_id)), str(ticket).encode(), self.ticket_ttl)
        return None

    def suite_ticket(self, store: Store, suite_id: str) -> str | None:
        """The latest suite_ticket WeCom pushed for ``suite_id`` (None: none in 30 minutes)."""
        value = store.get(_ticket_key(suite_id))
        return None if value is None else bytes(value).decode()


def _ticket_key(suite_id: str) -> str:
    return f"suite_ticket:{suite_id}"
