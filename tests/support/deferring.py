"""Sending a deferred callback the way WeCom does when no answer comes (RQ and Celery tests)."""

from __future__ import annotations

from flask import Flask

from flask_wecom.testing import CallbackSigner, WeComTestClient
from tests.support.fake_wecom_api import FAKE_CORP_ID
from tests.support.vectors import KEY, TOKEN


def send_with_retries(app: Flask, content: str) -> None:
    """Send a text from zhaoliu as WeCom does when no answer comes: three times in all.
    Each is answered at once and empty (the handler is deferred)."""
    signer = CallbackSigner(TOKEN, KEY, FAKE_CORP_ID)
    client = WeComTestClient(app, signer)
    first = signer.text(content, from_user="zhaoliu")
    for request in [first, signer.resend(first), signer.resend(first)]:
        response = client.send(request)
        assert (response.status, response.body) == (200, b"")
