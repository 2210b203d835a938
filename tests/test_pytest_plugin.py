"""flask_wecom.pytest_plugin, exercised the way users meet it: installed, in a separate pytest run.

Every inner run is a subprocess with no ``-p`` option, so the fixtures come from the
``pytest11`` entry point alone.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[1]
#: The README, whose "Testing your handlers" example must pass as written.
TESTING_DOC = ROOT / "docs" / "testing.md"
TESTING_HEADING = "# Testing your handlers"


def python_block_under(path: Path, heading: str) -> str:
    """The first ```python block in the section of ``path`` that starts at ``heading``.

    The section ends at the next heading of the same or a higher level.

    :raises LookupError: no such heading, or no python block in its section.
    """
    lines = path.read_text("utf-8").splitlines()
    if heading not in lines:
        raise LookupError(f"{path.name} has no heading {heading!r}")
    level = len(heading) - len(heading.lstrip("#"))
    block: list[str] | None = None
    for line in lines[lines.index(heading) + 1 :]:
        if block is not None:
            if line.strip() == "```":
                return "\n".join(block) + "\n"
            block.append(line)
        elif line.strip() == "```python":
            block = []
        elif re.match(rf"#{{1,{level}}} ", line):
            break
    raise LookupError(f"no complete ```python block under {heading!r} in {path.name}")


@pytest.fixture(autouse=True)
def checkout_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """Inner runs import this checkout whatever the editable install's state; the plugin is
    still found only through the installed entry point."""
    monkeypatch.setenv("PYTHONPATH", str(ROOT))


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    """Run pytest in a subprocess with warnings as errors, as this project's own suite does."""
    return pytester.runpytest_subprocess("-W", "error", "-p", "no:cacheprovider", *args)


def test_the_readme_example_passes_as_written(pytester: pytest.Pytester) -> None:
    code = python_block_under(TESTING_DOC, TESTING_HEADING)
    pytester.makepyfile(test_readme=code)
    result = run(pytester)
    result.assert_outcomes(passed=len(re.findall(r"^def test_", code, re.MULTILINE)))


@pytest.mark.parametrize(
    ("text", "error"),
    [
        pytest.param("## Other\n```python\nx = 1\n```\n", "no heading", id="no-heading"),
        pytest.param(
            "## Testing your handlers\ntext\n## Next\n```python\nx = 1\n```\n",
            "no complete",
            id="block-in-next-section",
        ),
        pytest.param(
            "## Testing your handlers\n```python\nx = 1\n", "no complete", id="unclosed-block"
        ),
    ],
)
def test_block_extraction_stays_in_its_section(tmp_path: Path, text: str, error: str) -> None:
    doc = tmp_path / "README.md"
    doc.write_text(text, "utf-8")
    with pytest.raises(LookupError, match=error):
        python_block_under(doc, "## Testing your handlers")


def test_block_extraction_reads_subsections(tmp_path: Path) -> None:
    doc = tmp_path / "README.md"
    doc.write_text("## Testing your handlers\n### Sub\n```python\nx = 1\n```\n## Next\n", "utf-8")
    assert python_block_under(doc, "## Testing your handlers") == "x = 1\n"


FLASK_APP_TESTS = """
import pytest
from flask import Flask

from flask_wecom import WeCom, WeComCrypto
from flask_wecom.envelope import extract_encrypted
from flask_wecom.testing import CallbackSigner

SEEN = []


@pytest.fixture
def app(wecom_config):
    app = Flask(__name__)
    app.config.update(wecom_config)
    wecom = WeCom(app)

    @wecom.message("text")
    def echo(message):
        return f"echo: {message.content}"

    return app


def test_client_round_trip(wecom_client):
    response = wecom_client.send_text("hello")
    assert (response.status, response.reply.content) == (200, "echo: hello")
    assert wecom_client.verify_url("42").body == b"42"


def test_fixtures_share_one_credential_set(wecom_credentials, wecom_config, wecom_signer):
    assert wecom_config == {
        "WECOM_TOKEN": wecom_credentials.token,
        "WECOM_ENCODING_AES_KEY": wecom_credentials.encoding_aes_key,
        "WECOM_CORP_ID": wecom_credentials.receive_id,
    }
    assert isinstance(wecom_signer, CallbackSigner)
    request = wecom_signer.text("hi")
    crypto = WeComCrypto(
        wecom_credentials.token, wecom_credentials.encoding_aes_key, wecom_credentials.receive_id
    )
    assert crypto.decrypt(extract_encrypted(request.body)) == (
        request.plaintext,
        wecom_credentials.receive_id,
    )


@pytest.mark.parametrize("round", [1, 2])
def test_credentials_are_fresh_per_test(wecom_credentials, round):
    SEEN.append(wecom_credentials)
    assert len(set(SEEN)) == len(SEEN)


def test_a_forged_callback_is_refused(wecom_client, wecom_signer):
    assert wecom_client.send(wecom_signer.text("hi", signature="0" * 40)).status == 403
"""

WSGI_APP_TESTS = """
import pytest

from flask_wecom import WeComCrypto, WeComMiddleware
from flask_wecom.replies import StreamReply
from flask_wecom.testing import Credentials


@pytest.fixture
def wecom_credentials():
    return Credentials.generate(receive_id="")  # an AI bot


@pytest.fixture
def wecom_path():
    return "/bot"


@pytest.fixture
def wecom_app(wecom_credentials):
    def bot(environ, start_response):
        message = environ["wecom.message"]
        reply = StreamReply(id="s1", content=f"echo: {message.content}", finish=True)
        start_response("200 OK", [("Content-Type", "application/json")])
        return [reply.render(message).encode()]

    crypto = WeComCrypto(wecom_credentials.token, wecom_credentials.encoding_aes_key, "")
    return WeComMiddleware(bot, crypto, path="/bot", format="json")


def test_any_wsgi_app_and_an_ai_bot(wecom_client):
    response = wecom_client.aibot_text("hi")
    assert response.reply == StreamReply(id="s1", content="echo: hi", finish=True)


def test_the_path_fixture_is_used(wecom_client):
    assert wecom_client.path == "/bot"
"""


FLASK_BOT_TESTS = """
import pytest
from flask import Flask

from flask_wecom import AIBot, StreamReply
from flask_wecom.testing import Credentials


@pytest.fixture
def wecom_credentials():
    return Credentials.generate(receive_id="")


@pytest.fixture
def app(wecom_config):
    app = Flask(__name__)
    app.config.update(wecom_config)
    wecom = AIBot(app, config_prefix="WECOM_", path="/wecom")

    @wecom.message("text")
    def stream(message):
        return StreamReply(id="s1", content=message.content.upper(), finish=True)

    return app


def test_a_flask_ai_bot(wecom_client):
    assert wecom_client.aibot_text("hi").reply.content == "HI"
"""


def test_fixtures_with_flask_apps_and_with_any_wsgi_app(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_flask_app=FLASK_APP_TESTS, test_flask_bot=FLASK_BOT_TESTS, test_wsgi_app=WSGI_APP_TESTS
    )
    result = run(pytester)
    result.assert_outcomes(passed=8)


def test_a_client_without_an_app_is_a_clear_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_no_app="""
        def test_needs_an_app(wecom_client):
            pass

        def test_signer_needs_no_app(wecom_signer):
            assert wecom_signer.text("hi").method == "POST"
        """
    )
    result = run(pytester)
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*define a fixture named 'app' (a Flask app) or 'wecom_app'*"])


def test_an_app_fixture_with_its_own_missing_fixture_shows_pytests_error(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        test_broken_app="""
        import pytest

        @pytest.fixture
        def app(database):
            return None

        def test_uses_client(wecom_client):
            pass
        """
    )
    result = run(pytester)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*fixture 'database' not found*"])
