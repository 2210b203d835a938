"""Outbound calls an attacker would like to steer (issue 19, item 8).

* A callback's ``response_url`` (AI bots) is where this server posts its active reply: a
  URL on 127.0.0.1, over http, on another host or written to fool a URL parser must be
  refused before any connection is made; an accepted origin that redirects is not followed.
* The API base URL carries the corpsecret and access tokens: https only, http only to a
  loopback address or when explicitly allowed.

Each refused row runs against a live listener on 127.0.0.1 and asserts it saw no
connection, so "refused" means nothing left this process.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from flask_wecom.client import (
    RESPONSE_URL_ORIGINS,
    TransportError,
    UnsafeURLError,
    WeComClient,
    check_api_base_url,
    check_response_url,
    post_response_url,
)
from flask_wecom.stores import MemoryStore
from tests.support.fake_wecom_api import FakeWeComAPI

PAYLOAD = {"msgtype": "markdown", "markdown": {"content": "hi"}}
RESPONSE_PATH = "/cgi-bin/aibot/response?response_code=RC1"


class Listener:
    """A loopback HTTP server that records each request and answers with ``status``."""

    def __init__(self, status: int = 200, location: str = "") -> None:
        self.requests: list[str] = []
        listener = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                listener.requests.append(f"{self.command} {self.path}")
                self.send_response(status)
                if location:
                    self.send_header("Location", location)
                body = b'{"errcode": 0, "errmsg": "ok"}'
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _answer

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.origin = f"http://127.0.0.1:{self.port}"
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    served = Listener()
    yield served
    served.close()


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("http://127.0.0.1:{port}" + RESPONSE_PATH, id="loopback-http"),
        pytest.param("https://127.0.0.1:{port}" + RESPONSE_PATH, id="loopback-https"),
        pytest.param("http://localhost:{port}" + RESPONSE_PATH, id="localhost"),
        pytest.param("http://[::ffff:127.0.0.1]:{port}" + RESPONSE_PATH, id="mapped-ipv6"),
        pytest.param("http://qyapi.weixin.qq.com" + RESPONSE_PATH, id="wecom-host-over-http"),
        pytest.param("https://qyapi.weixin.qq.com:{port}" + RESPONSE_PATH, id="wecom-other-port"),
        pytest.param("https://qyapi.weixin.qq.com.127.0.0.1.nip.io/", id="wecom-as-prefix"),
        pytest.param("https://qyapi.weixin.qq.com./" + RESPONSE_PATH, id="trailing-dot"),
        pytest.param("https://evil.example/?qyapi.weixin.qq.com", id="wecom-in-query"),
        pytest.param("https://qyapi.weixin.qq.com@127.0.0.1:{port}/", id="user-info"),
        pytest.param("https://127.0.0.1:{port}\\@qyapi.weixin.qq.com/", id="backslash"),
        pytest.param("https://qyapi.weixin.qq.com\r\nHost: 127.0.0.1/", id="header-injection"),
        pytest.param(" https://qyapi.weixin.qq.com/", id="leading-space"),
        pytest.param("https://qyapi.weixin.qq.com:99999/", id="bad-port"),
        pytest.param("https://[::1/", id="unclosed-bracket"),
        pytest.param("file:///etc/passwd", id="file"),
        pytest.param("gopher://127.0.0.1:{port}/_POST", id="gopher"),
        pytest.param("//127.0.0.1:{port}/", id="scheme-relative"),
        pytest.param("", id="empty"),
    ],
)
def test_response_url_refused_before_any_connection(listener: Listener, url: str) -> None:
    with pytest.raises(UnsafeURLError) as refused:
        post_response_url(url.format(port=listener.port), PAYLOAD, timeout=2)
    assert listener.requests == []
    assert "RC1" not in str(refused.value)  # the one-time response_code is never shown


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("https://qyapi.weixin.qq.com" + RESPONSE_PATH, id="documented"),
        pytest.param("https://QYAPI.weixin.qq.com:443" + RESPONSE_PATH, id="case-and-port"),
    ],
)
def test_response_url_on_wecom_is_accepted(url: str) -> None:
    check_response_url(url)  # raises if refused; no request is sent by the check


def test_response_url_origins_are_the_documented_one() -> None:
    assert RESPONSE_URL_ORIGINS == ("https://qyapi.weixin.qq.com",)


def test_private_deployment_adds_its_origin(listener: Listener) -> None:
    """An origin given explicitly (here a loopback one, as a private deployment's) is used."""
    url = listener.origin + RESPONSE_PATH
    assert post_response_url(url, PAYLOAD, origins=[listener.origin])["errcode"] == 0
    assert listener.requests == ["POST " + RESPONSE_PATH]


def test_redirect_from_an_accepted_origin_is_not_followed(listener: Listener) -> None:
    redirector = Listener(status=307, location=listener.origin + "/stolen")
    try:
        with pytest.raises(TransportError, match="answered HTTP 307"):
            post_response_url(
                redirector.origin + RESPONSE_PATH, PAYLOAD, origins=[redirector.origin]
            )
        assert redirector.requests == ["POST " + RESPONSE_PATH]
        assert listener.requests == []
    finally:
        redirector.close()


def test_api_redirect_is_not_followed(listener: Listener) -> None:
    """A base URL that redirects gettoken elsewhere does not carry the corpsecret there."""
    redirector = Listener(status=302, location=listener.origin + "/cgi-bin/gettoken")
    try:
        client = WeComClient("ww1", "s3cret", base_url=redirector.origin, store=MemoryStore())
        with client, pytest.raises(TransportError, match="answered HTTP 302"):
            client.access_token()
        assert listener.requests == []
    finally:
        redirector.close()


@pytest.mark.parametrize(
    ("url", "allow_http", "accepted"),
    [
        pytest.param("https://qyapi.weixin.qq.com", False, True, id="default"),
        pytest.param("https://wecom.example.com:8443/", False, True, id="private-deployment"),
        pytest.param("http://127.0.0.1:8080", False, True, id="loopback-v4"),
        pytest.param("http://[::1]:8080", False, True, id="loopback-v6"),
        pytest.param("http://localhost:8080", False, True, id="localhost"),
        pytest.param("http://10.0.0.8:8080", True, True, id="http-explicitly-allowed"),
        pytest.param("http://qyapi.weixin.qq.com", False, False, id="wecom-over-http"),
        pytest.param("http://10.0.0.8:8080", False, False, id="private-network-http"),
        pytest.param("http://wecom.example.com", False, False, id="other-host-http"),
        pytest.param("https://user:pw@qyapi.weixin.qq.com", False, False, id="user-info"),
        pytest.param("https://qyapi.weixin.qq.com/?debug=1", False, False, id="query"),
        pytest.param("ftp://qyapi.weixin.qq.com", True, False, id="ftp"),
        pytest.param("qyapi.weixin.qq.com", True, False, id="no-scheme"),
    ],
)
def test_api_base_url(url: str, allow_http: bool, accepted: bool) -> None:
    if accepted:
        assert check_api_base_url(url, allow_http=allow_http) == url
    else:
        with pytest.raises(UnsafeURLError):
            WeComClient("ww1", "s3cret", base_url=url, allow_http=allow_http)


def test_the_fake_api_reaches_the_client_over_loopback_http(
    fake_wecom_api: FakeWeComAPI,
) -> None:
    """The loopback fake the test suite uses stays reachable (http to 127.0.0.1)."""
    with WeComClient(
        fake_wecom_api.corp_id, fake_wecom_api.secret, base_url=fake_wecom_api.url
    ) as client:
        assert client.access_token()
