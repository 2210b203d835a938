"""pytest fixtures for testing WeCom (企业微信) callback handlers.

Active whenever flask_wecom is installed (the ``pytest11`` entry point ``wecom``).
Give your tests the app, then ask for a client::

    @pytest.fixture
    def app(wecom_config):
        app = create_app()
        app.config.update(wecom_config)   # WECOM_TOKEN, WECOM_ENCODING_AES_KEY, WECOM_CORP_ID
        WeCom(app)
        return app

    def test_echo(wecom_client):
        assert wecom_client.send_text("hello").reply.content == "echo: hello"

Fixtures (all function-scoped; define one with the same name to override it):

``wecom_credentials``
    a fresh :class:`~flask_wecom.testing.Credentials` per test.
``wecom_config``
    ``WECOM_TOKEN``, ``WECOM_ENCODING_AES_KEY`` and ``WECOM_CORP_ID`` of those
    credentials, for ``app.config``.
``wecom_signer``
    a :class:`~flask_wecom.testing.CallbackSigner` for those credentials.
``wecom_path``
    the callback path, ``"/wecom"``.
``wecom_app``
    the WSGI app the client talks to; defaults to your ``app`` fixture (the
    pytest-flask convention). Define ``wecom_app`` instead for a non-Flask app.
``wecom_client``
    a :class:`~flask_wecom.testing.WeComTestClient` bound to ``wecom_app``.

The fixtures only wire up :mod:`flask_wecom.testing`, which is imported when a
fixture first runs, so merely having flask_wecom installed loads nothing into a
test session. This is the only module of the package that imports pytest.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

    from .testing import CallbackSigner, Credentials, WeComTestClient

__all__ = [
    "wecom_app",
    "wecom_client",
    "wecom_config",
    "wecom_credentials",
    "wecom_path",
    "wecom_signer",
]


@pytest.fixture
def wecom_credentials() -> Credentials:
    """A fresh credential set (token, EncodingAESKey, CorpID-like receive id) for one test."""
    from .testing import Credentials

    return Credentials.generate()


@pytest.fixture
def wecom_config(wecom_credentials: Credentials) -> dict[str, str]:
    """The ``WECOM_*`` config keys of ``wecom_credentials``: put them into ``app.config``."""
    return wecom_credentials.config


@pytest.fixture
def wecom_signer(wecom_credentials: Credentials) -> CallbackSigner:
    """Builds signed, encrypted callbacks with ``wecom_credentials``."""
    return wecom_credentials.signer()


@pytest.fixture
def wecom_path() -> str:
    """The path the callbacks are sent to (override to match ``WECOM_PATH``)."""
    return "/wecom"


@pytest.fixture
def wecom_app(request: pytest.FixtureRequest) -> WSGIApplication:
    """The app under test: your ``app`` fixture unless you define ``wecom_app`` yourself."""
    try:
        app: WSGIApplication = request.getfixturevalue("app")
    except LookupError as exc:  # pytest's FixtureLookupError, public only in recent pytest
        if getattr(exc, "argname", None) != "app":
            raise  # the user's app fixture itself lacks something: show pytest's own error
        pytest.fail(
            "wecom_client needs the app under test: define a fixture named 'app' "
            "(a Flask app) or 'wecom_app' (any WSGI app)",
            pytrace=False,
        )
    return app


@pytest.fixture
def wecom_client(
    wecom_app: WSGIApplication, wecom_signer: CallbackSigner, wecom_path: str
) -> WeComTestClient:
    """Sends signed callbacks to ``wecom_app`` and decrypts the replies."""
    from .testing import WeComTestClient

    return WeComTestClient(wecom_app, wecom_signer, wecom_path)
