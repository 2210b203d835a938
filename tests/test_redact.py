"""flask_wecom.redact: secrets blanked in log records, urllib3's DEBUG request lines included."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

import pytest

from flask_wecom import client as client_module
from flask_wecom.client import URLLIB3_LOGGERS, WeComClient
from flask_wecom.redact import REDACTED, RedactingFilter, install_redaction, redact
from tests.support.fake_wecom_api import FakeWeComAPI


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            "GET /cgi-bin/gettoken?corpid=ww1&corpsecret=S3cr3t HTTP/1.1",
            "GET /cgi-bin/gettoken?corpid=ww1&corpsecret=[REDACTED] HTTP/1.1",
            id="corpsecret",
        ),
        pytest.param(
            "/cgi-bin/message/send?access_token=abc.DEF-123&debug=1",
            "/cgi-bin/message/send?access_token=[REDACTED]&debug=1",
            id="access-token-then-another",
        ),
        pytest.param(
            "?ACCESS_TOKEN=abc#frag", "?ACCESS_TOKEN=[REDACTED]#frag", id="upper-case-name"
        ),
        pytest.param("?corpsecret%3Dabc", "?corpsecret%3D[REDACTED]", id="percent-encoded-equals"),
        pytest.param(
            "url='https://x/?response_code=RC1'",
            "url='https://x/?response_code=[REDACTED]'",
            id="quoted-url",
        ),
        pytest.param(
            '{"access_token": "tok\\"en", "expires_in": 7200}',
            '{"access_token": "[REDACTED]", "expires_in": 7200}',
            id="json",
        ),
        pytest.param(
            "suite_access_token=a&provider_secret=b&permanent_code=c",
            "suite_access_token=[REDACTED]&provider_secret=[REDACTED]&permanent_code=[REDACTED]",
            id="suite-and-provider",
        ),
        pytest.param("my_access_token_count=3", "my_access_token_count=3", id="longer-name"),
        pytest.param("corpid=ww1&agentid=1000002", "corpid=ww1&agentid=1000002", id="no-secret"),
        pytest.param("no parameters at all", "no parameters at all", id="plain"),
    ],
)
def test_redact(text: str, expected: str) -> None:
    assert redact(text) == expected


def record(message: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord("t", logging.DEBUG, __file__, 1, message, args, None)


@pytest.mark.parametrize(
    ("log_record", "expected"),
    [
        pytest.param(
            record(
                '%s://%s:%s "%s %s %s" %s %s',
                "https",
                "qyapi",
                443,
                "GET",
                "/cgi-bin/gettoken?corpid=ww1&corpsecret=S",
                "HTTP/1.1",
                200,
                83,
            ),
            'https://qyapi:443 "GET /cgi-bin/gettoken?corpid=ww1&corpsecret=[REDACTED] '
            'HTTP/1.1" 200 83',
            id="urllib3-request-line",
        ),
        pytest.param(
            record("sent to %(url)s", {"url": "https://x/?access_token=T"}),
            "sent to https://x/?access_token=[REDACTED]",
            id="mapping-args",
        ),
        pytest.param(
            record("called https://x/?access_token=T directly"),
            "called https://x/?access_token=[REDACTED] directly",
            id="in-the-message",
        ),
        pytest.param(record("retry %d of %d", 1, 3), "retry 1 of 3", id="numbers-untouched"),
    ],
)
def test_filter_rewrites_message_and_arguments(
    log_record: logging.LogRecord, expected: str
) -> None:
    assert RedactingFilter().filter(log_record) is True
    assert log_record.getMessage() == expected


def test_install_is_idempotent() -> None:
    logger = logging.getLogger("tests.redact.idempotent")
    install_redaction(logger, "tests.redact.idempotent")
    install_redaction(logger)
    assert len(logger.filters) == 1


def test_the_library_installs_it_on_urllib3_and_its_own_logger() -> None:
    for name in (*URLLIB3_LOGGERS, client_module.__name__):
        assert any(isinstance(f, RedactingFilter) for f in logging.getLogger(name).filters), name


@pytest.fixture
def urllib3_debug(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    caplog.set_level(logging.DEBUG, logger="urllib3")
    caplog.set_level(logging.DEBUG, logger="flask_wecom")
    yield caplog


def test_urllib3_debug_output_stays_clean(
    fake_wecom_api: FakeWeComAPI,
    wecom_client_factory: Callable[..., WeComClient],
    urllib3_debug: pytest.LogCaptureFixture,
) -> None:
    """A real gettoken and message/send with urllib3 at DEBUG: no secret in any record."""
    wecom = wecom_client_factory()
    wecom.send_text("hi", to_user="zhangsan")
    token = wecom.access_token()
    lines = [r.getMessage() for r in urllib3_debug.records if r.name.startswith("urllib3")]
    assert any("corpsecret=" + REDACTED in line for line in lines), lines
    assert any("access_token=" + REDACTED in line for line in lines), lines
    assert fake_wecom_api.secret not in urllib3_debug.text
    assert token not in urllib3_debug.text


def test_without_the_filter_urllib3_would_print_the_secret(
    fake_wecom_api: FakeWeComAPI,
    wecom_client_factory: Callable[..., WeComClient],
    urllib3_debug: pytest.LogCaptureFixture,
) -> None:
    """The test above can fail: urllib3 does print the query at DEBUG."""
    connectionpool = logging.getLogger("urllib3.connectionpool")
    (installed,) = [f for f in connectionpool.filters if isinstance(f, RedactingFilter)]
    connectionpool.removeFilter(installed)
    try:
        wecom_client_factory().access_token()
    finally:
        connectionpool.addFilter(installed)
    assert "corpsecret=" + fake_wecom_api.secret in urllib3_debug.text
