"""flask_wecom.middleware around plain WSGI, Flask and Django apps, all under LintMiddleware."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pytest
from werkzeug.middleware.lint import LintMiddleware
from werkzeug.test import Client

from flask_wecom.aibot import BotReceiver
from flask_wecom.crypto import WeComCrypto
from flask_wecom.middleware import Endpoint, Outcome, WeComMiddleware
from flask_wecom.receivers import Receiver
from flask_wecom.replies import StreamReply
from flask_wecom.suite import SuiteReceiver
from flask_wecom.testing import CallbackSigner, SignedRequest, WeComTestClient
from tests.support.echo import reply_for
from tests.support.vectors import CORP_ID, KEY, TOKEN, load

NOW = 1_700_000_000
NEW_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"

StartResponse = Callable[..., Any]


def plain_wsgi_app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    """A bare WSGI callable: the reply, 404 for /missing, 200 'plain' on other paths."""
    if environ["PATH_INFO"] not in ("/wecom", "/other"):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"plain"]
    body = reply_for(environ)
    start_response("200 OK", [("Content-Type", "text/xml"), ("Content-Length", str(len(body)))])
    return [body]


def flask_app() -> Any:
    from flask import Flask, request

    app = Flask(__name__)

    @app.route("/wecom", methods=["POST"])
    @app.route("/other", methods=["POST"])
    def callback() -> bytes:
        return reply_for(request.environ)

    @app.route("/<path:rest>", methods=["GET", "POST"])
    def other(rest: str) -> str:
        return "plain"

    return app.wsgi_app


def django_app() -> Any:
    import django
    from django.conf import settings

    if not settings.configured:
        settings.configure(
            DEBUG=False,
            SECRET_KEY="test-only-not-secret",
            ALLOWED_HOSTS=["*"],
            ROOT_URLCONF="tests.django_urls",
            MIDDLEWARE=[],
            INSTALLED_APPS=[],
        )
        django.setup()
    from django.core.wsgi import get_wsgi_application

    return get_wsgi_application()


HOSTS = [
    pytest.param(lambda: plain_wsgi_app, id="plain-wsgi"),
    pytest.param(flask_app, id="flask"),
    pytest.param(django_app, id="django"),
]


@pytest.fixture(params=HOSTS)
def host(request: pytest.FixtureRequest) -> Any:
    """The inner app, once per kind of host."""
    return request.param()


@pytest.fixture
def signer() -> CallbackSigner:
    return CallbackSigner(TOKEN, KEY, CORP_ID, clock=lambda: NOW)


@pytest.fixture
def outcomes() -> list[Outcome]:
    return []


@pytest.fixture
def make_client(host: Any, outcomes: list[Outcome]) -> Callable[..., Client]:
    def make(**options: Any) -> Client:
        options.setdefault("hooks", [outcomes.append])
        options.setdefault("clock", lambda: NOW)
        if "endpoints" not in options:
            options.setdefault("crypto", WeComCrypto(TOKEN, KEY, CORP_ID))
        middleware = WeComMiddleware(LintMiddleware(host), **options)
        return Client(LintMiddleware(middleware))

    return make


@pytest.fixture
def client(make_client: Callable[..., Client]) -> Client:
    return make_client()


def send(client: Client, request: SignedRequest, path: str = "/wecom") -> Any:
    return client.open(
        request.url(path),
        method=request.method,
        data=request.body,
        headers={"Content-Type": request.content_type} if request.content_type else {},
    )


# -- URL verification --


def test_url_verification_answers_the_echo(client: Client, signer: CallbackSigner) -> None:
    response = send(client, signer.verification("1616140317555161061"))
    assert response.status_code == 200
    assert response.get_data() == b"1616140317555161061"
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert response.headers["Content-Length"] == "19"


def echostr_with_specials(signer: CallbackSigner) -> SignedRequest:
    """A verification whose echostr contains '+', '/' and '='."""
    for attempt in range(1000):
        request = signer.verification(f"echo-{attempt}")
        echostr = request.query_string.split("echostr=")[1]
        if all(code in echostr for code in ("%2B", "%2F", "%3D")):
            return request
    raise AssertionError("no echostr with + / = in 1000 tries")


@pytest.mark.parametrize("encode", [True, False], ids=["percent-encoded", "raw"])
def test_echostr_specials_survive(client: Client, signer: CallbackSigner, encode: bool) -> None:
    request = echostr_with_specials(signer)
    if not encode:
        raw = request.query_string.replace("%2B", "+").replace("%2F", "/").replace("%3D", "=")
        request = SignedRequest(
            "GET", raw, b"", "", request.plaintext, request.timestamp, request.nonce
        )
    response = send(client, request)
    assert (response.status_code, response.get_data()) == (200, request.plaintext)


# -- callbacks --


def test_callback_reply_is_encrypted(client: Client, signer: CallbackSigner) -> None:
    request = signer.text("你好 ]]> <&>")
    response = send(client, request)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/xml; charset=utf-8"
    assert int(response.headers["Content-Length"]) == len(response.get_data())
    assert b"echo" not in response.get_data()
    plaintext = signer.decrypt_reply(response.get_data(), request)
    assert plaintext == "<xml><Content><![CDATA[echo: 你好 ]]> <&>]]></Content></xml>".encode()


def test_environ_keys(signer: CallbackSigner) -> None:
    seen: dict[str, Any] = {}

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        seen.update(environ)
        start_response("200 OK", [])
        return []

    middleware = WeComMiddleware(
        LintMiddleware(app), WeComCrypto(TOKEN, KEY, CORP_ID), clock=lambda: NOW
    )
    request = signer.text("hi")
    response = send(Client(LintMiddleware(middleware)), request)
    assert (response.status_code, response.get_data()) == (200, b"")
    assert seen["wecom.plaintext"] == request.plaintext
    assert seen["wecom.message"].content == "hi"
    assert seen["wecom.endpoint"].path == "/wecom"
    assert seen["wecom.credential"] == 0
    assert seen["wecom.receive_id"] == CORP_ID
    assert seen["wecom.orig"]["body"] == request.body
    assert seen["CONTENT_LENGTH"] == str(len(request.plaintext))
    assert seen["CONTENT_TYPE"] == "application/xml; charset=utf-8"


def test_event_with_empty_body_stays_empty(client: Client, signer: CallbackSigner) -> None:
    response = send(client, signer.subscribe())
    assert (response.status_code, response.get_data()) == (200, b"")


def test_other_paths_pass_through(client: Client, signer: CallbackSigner) -> None:
    response = client.get("/elsewhere?msg_signature=x")
    assert (response.status_code, response.get_data()) == (200, b"plain")


def test_non_2xx_passes_through_unencrypted(signer: CallbackSigner) -> None:
    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
        return [b"busy"]

    middleware = WeComMiddleware(app, WeComCrypto(TOKEN, KEY, CORP_ID), clock=lambda: NOW)
    response = send(Client(LintMiddleware(middleware)), signer.text("hi"))
    assert (response.status_code, response.get_data()) == (503, b"busy")


# -- WSGI protocol --


class ClosingBody:
    """An app iterable that records close() and can fail half-way."""

    def __init__(self, chunks: list[bytes], fail: bool = False) -> None:
        self.chunks, self.fail, self.closed = chunks, fail, False

    def __iter__(self) -> Iterator[bytes]:
        yield from self.chunks
        if self.fail:
            raise RuntimeError("boom")

    def close(self) -> None:
        self.closed = True


@pytest.mark.parametrize("fail", [False, True], ids=["normal", "raises-while-iterating"])
def test_close_is_always_called(signer: CallbackSigner, fail: bool) -> None:
    body = ClosingBody([b"<xml>", b"</xml>"], fail)

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Type", "text/xml")])
        return body

    middleware = WeComMiddleware(app, WeComCrypto(TOKEN, KEY, CORP_ID), clock=lambda: NOW)
    if fail:
        with pytest.raises(RuntimeError, match="boom"):
            send(Client(middleware), signer.text("hi"))
    else:
        request = signer.text("hi")
        assert (
            signer.decrypt_reply(send(Client(middleware), request).get_data(), request)
            == b"<xml></xml>"
        )
    assert body.closed


def test_write_callable_and_exc_info(signer: CallbackSigner) -> None:
    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        write = start_response("500 Internal Server Error", [("Content-Type", "text/plain")])
        try:
            raise ValueError("handled")
        except ValueError:
            import sys

            write = start_response("200 OK", [("Content-Type", "text/xml")], sys.exc_info())
        write(b"<xml>")
        return [b"</xml>"]

    middleware = WeComMiddleware(app, WeComCrypto(TOKEN, KEY, CORP_ID), clock=lambda: NOW)
    request = signer.text("hi")
    response = send(Client(middleware), request)
    assert response.status_code == 200
    assert signer.decrypt_reply(response.get_data(), request) == b"<xml></xml>"


# -- refusals --


def with_query(request: SignedRequest, query: str) -> SignedRequest:
    return SignedRequest(
        request.method,
        query,
        request.body,
        request.content_type,
        request.plaintext,
        request.timestamp,
        request.nonce,
    )


def drop(request: SignedRequest, name: str) -> SignedRequest:
    kept = [p for p in request.query_string.split("&") if not p.startswith(name + "=")]
    return with_query(request, "&".join(kept))


#: The plaintext of the refused callbacks: it must never show in an answer or a log line.
SECRET_TEXT = "my salary is 12345"

REFUSALS: list[Any] = [
    pytest.param(
        lambda s: s.text(SECRET_TEXT, signature="0" * 40), 403, "signature", id="bad-signature"
    ),
    pytest.param(
        lambda s: drop(s.text(SECRET_TEXT), "msg_signature"), 403, "signature", id="no-signature"
    ),
    pytest.param(lambda s: drop(s.text(SECRET_TEXT), "nonce"), 403, "signature", id="no-nonce"),
    pytest.param(
        lambda s: drop(s.text(SECRET_TEXT), "timestamp"), 403, "timestamp", id="no-timestamp"
    ),
    pytest.param(
        lambda s: s.text(SECRET_TEXT, timestamp="12a"),
        403,
        "timestamp",
        id="timestamp-not-digits",
    ),
    pytest.param(lambda s: s.text(SECRET_TEXT, timestamp=NOW - 301), 403, "timestamp", id="stale"),
    pytest.param(lambda s: s.text(SECRET_TEXT, timestamp=NOW + 301), 403, "timestamp", id="future"),
    pytest.param(
        lambda s: s.text(SECRET_TEXT, receive_id="wxother"),
        400,
        "receive_id",
        id="other-receive-id",
    ),
    pytest.param(
        lambda s: with_query(s.text(SECRET_TEXT), s.text(SECRET_TEXT).query_string + "&nonce=1"),
        400,
        "parse",
        id="duplicate-parameter",
    ),
    pytest.param(
        lambda s: drop(s.verification(), "echostr"), 400, "parse", id="get-without-echostr"
    ),
    pytest.param(
        lambda s: SignedRequest(
            "POST", s.text(SECRET_TEXT).query_string, b"<xml>", "text/xml", b"", "", ""
        ),
        400,
        "parse",
        id="malformed-envelope",
    ),
    pytest.param(
        lambda s: SignedRequest(
            "POST", s.text(SECRET_TEXT).query_string, b"x" * 300_000, "text/xml", b"", "", ""
        ),
        413,
        "too_large",
        id="body-over-cap",
    ),
    pytest.param(
        lambda s: s.callback(b"<xml><unclosed></xml>"), 400, "parse", id="plaintext-not-xml"
    ),
]


@pytest.mark.parametrize(("build", "status", "reason"), REFUSALS)
def test_refusals(
    make_client: Callable[..., Client],
    signer: CallbackSigner,
    outcomes: list[Outcome],
    caplog: pytest.LogCaptureFixture,
    build: Callable[[CallbackSigner], SignedRequest],
    status: int,
    reason: str,
) -> None:
    client = make_client()
    request = build(signer)
    with caplog.at_level(logging.WARNING, logger="flask_wecom"):
        response = send(client, request)
    assert response.status_code == status
    # Refusals after the signature checked out all get one answer (no padding oracle).
    after_signature = reason == "receive_id" or request.plaintext.startswith(b"<xml><unclosed")
    shown = "parse (-40002): the callback could not be decrypted" if after_signature else reason
    assert response.get_data().decode().startswith(shown)
    assert SECRET_TEXT.encode() not in response.get_data()
    assert outcomes == [Outcome("/wecom", "refused", status, reason)]
    assert len(caplog.records) == 1
    assert f": {reason} (" in caplog.text
    assert SECRET_TEXT not in caplog.text and KEY not in caplog.text


def test_timestamp_window_edges_are_inside(client: Client, signer: CallbackSigner) -> None:
    for stamp in (NOW - 300, NOW + 300):
        assert send(client, signer.text("hi", timestamp=stamp)).status_code == 200


def test_other_methods(client: Client, outcomes: list[Outcome]) -> None:
    response = client.put("/wecom")
    assert response.status_code == 405
    assert response.headers["Allow"] == "GET, POST"
    assert outcomes[0].reason == "method"


# -- credentials and endpoints --


def test_key_rotation(make_client: Callable[..., Client], outcomes: list[Outcome]) -> None:
    new = WeComCrypto("new-token", NEW_KEY, CORP_ID)
    old = WeComCrypto(TOKEN, KEY, CORP_ID)
    client = make_client(endpoints=[Endpoint("/wecom", [new, old])])
    for credential, signer in enumerate(
        [
            CallbackSigner("new-token", NEW_KEY, CORP_ID, clock=lambda: NOW),
            CallbackSigner(TOKEN, KEY, CORP_ID, clock=lambda: NOW),
        ]
    ):
        request = signer.text("rotate")
        response = send(client, request)
        assert response.status_code == 200
        assert signer.decrypt_reply(response.get_data(), request) is not None
        assert outcomes[-1].credential == credential

    retired = make_client(endpoints=[Endpoint("/wecom", [new])])
    old_signer = CallbackSigner(TOKEN, KEY, CORP_ID, clock=lambda: NOW)
    assert send(retired, old_signer.text("rotate")).status_code == 403


def test_two_endpoints_do_not_accept_each_others_callbacks(
    make_client: Callable[..., Client],
) -> None:
    other = WeComCrypto("other-token", NEW_KEY, "ww-other")
    client = make_client(
        endpoints=[Endpoint("/wecom", WeComCrypto(TOKEN, KEY, CORP_ID)), Endpoint("/other", other)]
    )
    ours = CallbackSigner(TOKEN, KEY, CORP_ID, clock=lambda: NOW)
    theirs = CallbackSigner("other-token", NEW_KEY, "ww-other", clock=lambda: NOW)
    assert send(client, ours.text("a"), "/wecom").status_code == 200
    assert send(client, theirs.text("a"), "/other").status_code == 200
    assert send(client, ours.text("a"), "/other").status_code == 403
    assert send(client, theirs.text("a"), "/wecom").status_code == 403


@pytest.mark.parametrize(
    ("build", "message"),
    [
        pytest.param(
            lambda: Endpoint("wecom", WeComCrypto(TOKEN, KEY)), "start with '/'", id="path"
        ),
        pytest.param(lambda: Endpoint("/w", []), "WeComCrypto", id="no-credentials"),
        pytest.param(
            lambda: Endpoint("/w", WeComCrypto(TOKEN, KEY), "yaml"), "format", id="format"
        ),  # type: ignore[arg-type]
        pytest.param(lambda: WeComMiddleware(plain_wsgi_app), "needs crypto", id="nothing-mounted"),
        pytest.param(
            lambda: WeComMiddleware(plain_wsgi_app, WeComCrypto(TOKEN, KEY), max_body=0),
            "max_body",
            id="max-body",
        ),
        pytest.param(
            lambda: WeComMiddleware(plain_wsgi_app, WeComCrypto(TOKEN, KEY), tolerance=0),
            "tolerance",
            id="tolerance",
        ),
        pytest.param(
            lambda: WeComMiddleware(
                plain_wsgi_app,
                WeComCrypto(TOKEN, KEY),
                endpoints=[Endpoint("/wecom", WeComCrypto(TOKEN, KEY))],
            ),
            "already mounted",
            id="duplicate-path",
        ),
    ],
)
def test_configuration_is_validated(build: Callable[[], object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build()


def test_hooks_see_outcomes_and_their_errors_are_contained(
    signer: CallbackSigner, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[Outcome] = []

    def broken(outcome: Outcome) -> None:
        raise RuntimeError("hook bug")

    middleware = WeComMiddleware(
        plain_wsgi_app,
        WeComCrypto(TOKEN, KEY, CORP_ID),
        clock=lambda: NOW,
        hooks=[broken, seen.append],
    )
    client = Client(middleware)
    assert send(client, signer.verification("1")).status_code == 200
    assert send(client, signer.text("hi")).status_code == 200
    assert [o.outcome for o in seen] == ["verified", "accepted"]
    assert seen[1].handler_seconds is not None and seen[1].handler_seconds >= 0
    assert "hook bug" in caplog.text


# -- public vectors over HTTP --


def vector_request(vector: dict[str, Any]) -> tuple[str, str, bytes]:
    query = {
        "msg_signature": vector["msg_signature"],
        "timestamp": vector["timestamp"],
        "nonce": vector["nonce"],
    }
    from urllib.parse import quote, urlencode

    if vector["kind"] == "verify_url":
        return "GET", urlencode({**query, "echostr": vector["echostr"]}, quote_via=quote), b""
    body = vector.get("post_data") or json.dumps({"encrypt": vector["encrypt"]})
    return "POST", urlencode(query, quote_via=quote), body.encode()


VECTOR_ROWS = [
    pytest.param(
        vector,
        400 if ": :mycreate" in vector.get("expected_plaintext", "") else 200,
        id=f"{name}{i}",
    )
    for name in ("public", "aibot")
    for i, vector in enumerate(load(name), 1)
] + [
    pytest.param(vector, 403 if vector["expected_error"] == -40001 else 400, id=f"negative{i}")
    for i, vector in enumerate(load("negative"), 1)
]


@pytest.mark.parametrize(("vector", "status"), VECTOR_ROWS)
def test_vectors_over_http(vector: dict[str, Any], status: int) -> None:
    """Every published vector through HTTP; the official JSON sample's invalid JSON is a 400."""
    crypto = WeComCrypto(vector["token"], vector["encoding_aes_key"], vector["receive_id"])
    middleware = WeComMiddleware(
        LintMiddleware(plain_wsgi_app), crypto, clock=lambda: float(vector["timestamp"])
    )
    method, query, body = vector_request(vector)
    response = Client(LintMiddleware(middleware)).open(f"/wecom?{query}", method=method, data=body)
    assert response.status_code == status
    if method == "GET" and status == 200:
        assert response.get_data() == vector["expected_plaintext"].encode()


# -- the gaps mutation testing found (issue 19) ----------------------------------------------


def echo_app() -> WeComMiddleware:
    receiver = Receiver()
    receiver.message("text")(lambda m: f"echo: {m.content}")
    return WeComMiddleware(
        plain_wsgi_app, WeComCrypto(TOKEN, KEY, CORP_ID), receiver=receiver, clock=lambda: NOW
    )


def test_a_non_utf8_echo_is_refused_not_a_500(signer: CallbackSigner) -> None:
    encrypted = signer.crypto.encrypt(b"\xff\xfe\xfd")
    request = signer.with_ciphertext(encrypted, method="GET")
    response = Client(echo_app()).get(request.url("/wecom"))
    assert response.status_code == 400


def test_an_environ_without_query_string_is_refused(signer: CallbackSigner) -> None:
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/wecom",
        "CONTENT_LENGTH": "0",
        "wsgi.input": io.BytesIO(b""),
    }  # PEP 3333 allows QUERY_STRING to be absent
    statuses: list[str] = []
    body = b"".join(echo_app()(environ, lambda status, headers, exc=None: statuses.append(status)))
    assert statuses == ["403 Forbidden"] and body.startswith(b"signature")


def test_a_json_endpoint_answers_in_json(signer: CallbackSigner) -> None:
    bot = BotReceiver()
    bot.message("text")(lambda m: "hi")
    app = WeComMiddleware(
        plain_wsgi_app, WeComCrypto(TOKEN, KEY, ""), path="/bot", receiver=bot, clock=lambda: NOW
    )
    bot_signer = CallbackSigner(TOKEN, KEY, "", format="json", clock=lambda: NOW)
    response = WeComTestClient(app, bot_signer, "/bot").send(bot_signer.aibot_text("q"))
    assert response.body.startswith(b"{") and json.loads(response.body)["nonce"]
    assert isinstance(response.reply, StreamReply) and response.reply.content == "hi"


def test_a_suite_answers_success_in_plain_text(signer: CallbackSigner) -> None:
    app = WeComMiddleware(
        plain_wsgi_app,
        WeComCrypto(TOKEN, KEY, CORP_ID),
        receiver=SuiteReceiver(),
        clock=lambda: NOW,
    )
    request = signer.text("x")
    response = Client(app).post(request.url("/wecom"), data=request.body)
    assert (response.status_code, response.get_data()) == (200, b"success")
    assert response.headers["Content-Type"].startswith("text/plain")


@pytest.mark.parametrize(
    ("max_body", "size", "status"),
    [
        pytest.param(1, 1, 400, id="one-byte-cap-one-byte"),  # read, then not an envelope
        pytest.param(1, 2, 413, id="one-byte-cap-two-bytes"),
    ],
)
def test_the_body_cap_at_its_edge(
    signer: CallbackSigner, max_body: int, size: int, status: int
) -> None:
    app = WeComMiddleware(
        plain_wsgi_app, WeComCrypto(TOKEN, KEY, CORP_ID), max_body=max_body, clock=lambda: NOW
    )
    request = signer.text("x")
    response = Client(app).post(request.url("/wecom"), data=b"x" * size)
    assert response.status_code == status


@pytest.mark.parametrize(("tolerance", "skew", "status"), [(1, 1, 200), (1, 2, 403)])
def test_a_one_second_window(
    signer: CallbackSigner, tolerance: float, skew: int, status: int
) -> None:
    app = WeComMiddleware(
        plain_wsgi_app, WeComCrypto(TOKEN, KEY, CORP_ID), tolerance=tolerance, clock=lambda: NOW
    )
    request = signer.text("x", timestamp=NOW - skew)
    assert Client(app).post(request.url("/wecom"), data=request.body).status_code == status
