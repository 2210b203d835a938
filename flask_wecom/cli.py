"""The ``flask-wecom`` command: make keys, check credentials, decrypt captures, simulate WeCom.

Usage (also ``python -m flask_wecom``)::

    flask-wecom genkey [--token]
    flask-wecom verify [--url URL] [--show-secrets]
    flask-wecom simulate URL [--text TEXT]... [--click KEY]... [--subscribe] [--file PATH]...
                             [--aibot] [--no-verify] [--count N] [--retries N] [--timeout SECONDS]
    flask-wecom decrypt [--query QUERY] [BODY_FILE]

Every subcommand takes ``--json`` to print one JSON document for scripts.
Credentials come from ``--token``, ``--key`` and ``--corp-id`` or from the
environment variables the Flask extension reads: ``WECOM_TOKEN``,
``WECOM_ENCODING_AES_KEY`` and ``WECOM_CORP_ID`` (the receive id; empty for AI
bots). Keys and tokens are printed only by ``genkey`` and by ``verify
--show-secrets``.

Exit codes:

* ``0``: success.
* ``1``: a check or a request failed: ``verify`` found a malformed credential,
  ``simulate`` saw a refusal, no answer in time or a reply that does not
  decrypt, ``decrypt`` met a wrong signature or undecryptable data.
* ``2``: usage error: unknown option, missing credential, or a malformed key
  given to ``simulate`` or ``decrypt``.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import math
import re
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Literal, TypeVar
from urllib.parse import unquote, urlsplit

import click

from .crypto import decode_aes_key
from .envelope import extract_encrypted
from .errors import AESKeyError, ParseError, WeComError
from .replies import parse_reply
from .safe_xml import parse_xml
from .testing import CallbackSigner, SignedRequest, generate_encoding_aes_key, generate_token

if TYPE_CHECKING:
    import requests

__all__ = ["EXIT_FAILED", "EXIT_OK", "EXIT_USAGE", "cli", "main"]

#: Exit code: success.
EXIT_OK = 0
#: Exit code: a check or a request failed.
EXIT_FAILED = 1
#: Exit code: the command line is wrong.
EXIT_USAGE = 2

#: ``simulate`` shows a progress bar instead of one line per round trip above this many.
PROGRESS_THRESHOLD = 20
#: ``simulate`` lists at most this many failed round trips when it shows a progress bar.
MAX_LISTED_FAILURES = 10

_TOKEN_PATTERN = re.compile(r"[A-Za-z0-9]{1,32}")
_CONSOLE_KEY_PATTERN = re.compile(r"[A-Za-z0-9]{43}")
_REQUEST_PARAMETERS = ("msg_signature", "timestamp", "nonce")

#: What to check when WeCom's crypto reports an error, by the error's ``reason``.
_HINTS = {
    "signature": "the signature does not match: a different Token, or another request's query",
    "receive_id": "the ciphertext carries another receive id than --corp-id / WECOM_CORP_ID",
    "decrypt": "cannot decrypt: a different EncodingAESKey, or a damaged ciphertext",
    "buffer": "cannot decrypt: a different EncodingAESKey, or a damaged ciphertext",
    "base64": "the ciphertext is not base64: the body or query string was changed on the way",
}

F = TypeVar("F", bound=Callable[..., Any])


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``); return the exit code."""
    try:
        result = cli.main(
            args=None if argv is None else list(argv),
            prog_name="flask-wecom",
            standalone_mode=False,
        )
    except click.UsageError as exc:
        exc.show()
        return EXIT_USAGE
    except click.ClickException as exc:
        exc.show()
        return EXIT_FAILED
    except click.Abort:
        click.echo("Aborted.", err=True)
        return EXIT_FAILED
    return result if isinstance(result, int) else EXIT_OK


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="flask-wecom")
def cli() -> None:
    """Tools for WeCom (企业微信) callbacks: keys, credential checks, decryption, a simulator.

    Exit codes: 0 success, 1 a check or request failed, 2 usage error.
    """


from .longconn_cli import longconn as _longconn  # noqa: E402 - registered next to the group

cli.add_command(_longconn)


def _json_option(command: F) -> F:
    """Add --json."""
    return click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")(command)


def _credential_options(command: F) -> F:
    """Add --token, --key and --corp-id, each with its WECOM_* environment variable."""
    options = [
        click.option(
            "--token",
            envvar="WECOM_TOKEN",
            show_envvar=True,
            required=True,
            help="The Token from the callback settings.",
        ),
        click.option(
            "--key",
            "encoding_aes_key",
            envvar="WECOM_ENCODING_AES_KEY",
            show_envvar=True,
            required=True,
            help="The 43-character EncodingAESKey.",
        ),
        click.option(
            "--corp-id",
            "receive_id",
            envvar="WECOM_CORP_ID",
            show_envvar=True,
            default="",
            help="The receive id: the CorpID (apps), SuiteID (suite commands); empty for AI bots.",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _signer(token: str, encoding_aes_key: str, receive_id: str, *, aibot: bool) -> CallbackSigner:
    """A signer for the given credentials; malformed ones are a usage error (exit 2)."""
    try:
        return CallbackSigner(
            token, encoding_aes_key, receive_id, format="json" if aibot else "xml"
        )
    except AESKeyError as exc:
        raise click.BadParameter(str(exc), param_hint="'--key' / WECOM_ENCODING_AES_KEY") from exc
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="'--token' / WECOM_TOKEN") from exc


def _print_json(document: object) -> None:
    """Print ``document`` as indented JSON, keeping non-ASCII text readable."""
    click.echo(json.dumps(document, ensure_ascii=False, indent=2))


def _failure(error: WeComError) -> str:
    """What to check for a crypto error, in words."""
    return _HINTS.get(error.reason, str(error))


# --------------------------------------------------------------------------- genkey


@cli.command()
@click.option("--token", "with_token", is_flag=True, help="Also print a fresh Token.")
@_json_option
def genkey(with_token: bool, as_json: bool) -> int:
    """Print a fresh EncodingAESKey (and a Token with --token).

    The text output is NAME=value lines, usable as a .env file or with export.
    """
    values = {"token": generate_token()} if with_token else {}
    values["encoding_aes_key"] = generate_encoding_aes_key()
    if as_json:
        _print_json(values)
    else:
        for name, value in values.items():
            click.echo(f"WECOM_{name.upper()}={value}")
    return EXIT_OK


# --------------------------------------------------------------------------- verify


@dataclass(frozen=True)
class _Check:
    """One verified setting: its JSON name, whether it is usable, and why."""

    name: str
    ok: bool
    detail: str


#: How ``verify`` labels each setting in its text output.
_CHECK_LABELS = {
    "token": "Token",
    "encoding_aes_key": "EncodingAESKey",
    "receive_id": "Receive id",
    "url": "URL",
}


def _check_token(token: str) -> _Check:
    if _TOKEN_PATTERN.fullmatch(token):
        return _Check("token", True, f"{len(token)} letters and digits")
    return _Check(
        "token", False, f"must be 1 to 32 letters and digits (got {len(token)} characters)"
    )


def _check_key(encoding_aes_key: str) -> _Check:
    try:
        decode_aes_key(encoding_aes_key)
    except AESKeyError as exc:
        return _Check("encoding_aes_key", False, str(exc))
    if not _CONSOLE_KEY_PATTERN.fullmatch(encoding_aes_key):
        return _Check(
            "encoding_aes_key", False, "the admin console accepts only letters and digits"
        )
    return _Check("encoding_aes_key", True, "43 letters and digits, a 32-byte AES key")


def _check_receive_id(receive_id: str) -> _Check:
    if not receive_id:
        return _Check("receive_id", True, "empty: an AI bot (智能机器人) or an individual's suite")
    return _Check("receive_id", True, receive_id)


def _check_url(url: str) -> _Check:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return _Check("url", False, "must be an http:// or https:// URL with a host name")
    try:
        local = parts.hostname == "localhost" or not ipaddress.ip_address(parts.hostname).is_global
    except ValueError:  # a domain name
        local = False
    note = " (a local address: fine for simulate, but WeCom cannot reach it)" if local else ""
    return _Check("url", True, url + note)


@cli.command()
@_credential_options
@click.option("--url", help="The callback URL to register, e.g. https://example.com/wecom.")
@click.option("--show-secrets", is_flag=True, help="Print the Token and EncodingAESKey too.")
@_json_option
def verify(
    token: str,
    encoding_aes_key: str,
    receive_id: str,
    url: str | None,
    show_secrets: bool,
    as_json: bool,
) -> int:
    """Check credentials and print what the admin console needs.

    A Token is 1 to 32 letters and digits; an EncodingAESKey is 43 letters and
    digits. Exits 1 when a check fails.
    """
    checks = [_check_token(token), _check_key(encoding_aes_key), _check_receive_id(receive_id)]
    if url is not None:
        checks.append(_check_url(url))
    ok = all(check.ok for check in checks)
    console = {
        "url": url,
        "token": token if show_secrets else None,
        "encoding_aes_key": encoding_aes_key if show_secrets else None,
    }
    if as_json:
        _print_json({"ok": ok, "checks": [asdict(c) for c in checks], "console": console})
        return EXIT_OK if ok else EXIT_FAILED
    for check in checks:
        mark = click.style("ok  ", fg="green") if check.ok else click.style("FAIL", fg="red")
        click.echo(f"{mark} {_CHECK_LABELS[check.name]:<15} {check.detail}")
    if not ok:
        click.echo("\nFix the failed settings, then run verify again.")
        return EXIT_FAILED
    hidden = "(yours; --show-secrets prints it)"
    click.echo("\nPaste into the admin console (应用管理 → 应用 → 接收消息 → 设置API接收):")
    click.echo(f"  URL             {url or '(your public URL, e.g. https://example.com/wecom)'}")
    click.echo(f"  Token           {console['token'] or hidden}")
    click.echo(f"  EncodingAESKey  {console['encoding_aes_key'] or hidden}")
    return EXIT_OK


# --------------------------------------------------------------------------- decrypt


def _query_parameters(query: str) -> dict[str, str]:
    """The parameters of a query string or full URL, percent-decoded ('+' stays '+')."""
    text = query.split("?", 1)[1] if "?" in query else query
    parameters = {}
    for pair in text.split("&"):
        if pair:
            name, _, value = pair.partition("=")
            parameters[unquote(name)] = unquote(value)
    return parameters


def _is_reply_envelope(body: bytes) -> bool:
    """True for a passive-reply envelope (it carries its own MsgSignature)."""
    try:
        if body.lstrip()[:1] == b"{":
            document = json.loads(body)
            return isinstance(document, dict) and "msgsignature" in document
        return parse_xml(body).find("MsgSignature") is not None
    except (ValueError, ParseError):  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        return False


@cli.command()
@_credential_options
@click.option(
    "--query",
    help="The request's query string or full URL (msg_signature, timestamp, nonce[, echostr]).",
)
@click.argument("body_file", type=click.File("rb"), required=False)
@_json_option
def decrypt(
    token: str,
    encoding_aes_key: str,
    receive_id: str,
    query: str | None,
    body_file: BinaryIO | None,
    as_json: bool,
) -> int:
    """Decrypt a captured callback or reply, checking its signature.

    BODY_FILE is a request or reply body ('-' reads standard input). A URL
    verification needs only --query, which carries echostr. With --query a
    request's signature is checked; without it the body is decrypted unchecked.
    A reply envelope carries its own signature, which is always checked.
    """
    signer = _signer(token, encoding_aes_key, receive_id, aibot=False)
    parameters = _query_parameters(query) if query else {}
    body: bytes = body_file.read() if body_file is not None else b""
    if not body and "echostr" not in parameters:
        raise click.UsageError(
            "give a BODY_FILE ('-' for standard input) or a --query with echostr"
        )
    if parameters and not all(name in parameters for name in _REQUEST_PARAMETERS):
        raise click.UsageError("--query needs msg_signature, timestamp and nonce")
    sig, timestamp, nonce = (parameters.get(name, "") for name in _REQUEST_PARAMETERS)
    kind: Literal["verification", "reply", "callback"]
    try:
        if not body:
            kind, checked = "verification", True
            plaintext = signer.crypto.verify_url(sig, timestamp, nonce, parameters["echostr"])
            plaintext_bytes = plaintext.encode("utf-8")
        elif _is_reply_envelope(body):
            kind, checked = "reply", True
            plaintext_bytes = signer.decrypt_reply(body) or b""
        else:
            kind, checked = "callback", bool(parameters)
            encrypted = extract_encrypted(body)
            if checked:
                decrypted = signer.crypto.verify_and_decrypt(encrypted, sig, timestamp, nonce)
                plaintext_bytes = decrypted.plaintext
            else:
                plaintext_bytes, _ = signer.crypto.decrypt(encrypted)
    except WeComError as exc:
        if as_json:
            _print_json({"ok": False, "reason": exc.reason, "error": _failure(exc)})
        else:
            click.echo(f"error: {_failure(exc)}", err=True)
        return EXIT_FAILED
    text = plaintext_bytes.decode("utf-8", "replace")
    if as_json:
        _print_json({"ok": True, "kind": kind, "signature_checked": checked, "plaintext": text})
        return EXIT_OK
    status = "signature ok" if checked else "signature NOT checked (no --query)"
    click.echo(f"{kind}: {status}, receive id {signer.crypto.receive_ids[0]!r}", err=True)
    click.echo(text)
    return EXIT_OK


# --------------------------------------------------------------------------- simulate


@dataclass(frozen=True)
class _Step:
    """One kind of callback to send; ``build`` makes a fresh request each round."""

    label: str
    build: Callable[[], SignedRequest]


@dataclass(frozen=True)
class _Attempt:
    """One HTTP send: the status (None: no answer) and how long it took."""

    status: int | None
    ms: float
    error: str | None = None


@dataclass
class _RoundTrip:
    """One callback until it was answered with 200 or the sends ran out."""

    label: str
    method: str
    outcome: Literal["ok", "refused", "no answer", "bad reply"] = "no answer"
    attempts: list[_Attempt] = field(default_factory=list)
    #: The decrypted reply plaintext (the echo for a URL verification), or None.
    reply: str | None = None
    #: A readable summary: the parsed reply, or why the round trip failed.
    detail: str = ""

    @property
    def status(self) -> int | None:
        """The status of the last send, or None when it got no answer."""
        return self.attempts[-1].status if self.attempts else None


class _Simulator:
    """Sends callbacks to one URL as WeCom would, resending when no 200 arrives in time."""

    def __init__(self, url: str, signer: CallbackSigner, *, retries: int, timeout: float) -> None:
        try:
            import requests
        except ImportError as exc:
            raise click.ClickException(
                "simulate needs requests: pip install 'flask-wecom[client]'"
            ) from exc
        self.url = url
        self.signer = signer
        self.retries = retries
        self.timeout = timeout
        self.session: requests.Session = requests.Session()

    def close(self) -> None:
        """Close the HTTP connections."""
        self.session.close()

    def round_trip(self, step: _Step) -> _RoundTrip:
        """Send one callback, then resend the same plaintext while no 200 arrives."""
        request = step.build()
        trip = _RoundTrip(step.label, request.method)
        for attempt in range(1 + self.retries):
            if attempt:
                request = self.signer.resend(request)
            answer = self._send(request, trip)
            if answer is not None and trip.status == 200:  # WeCom resends on anything else
                self._judge(request, answer, trip)
                return trip
        if trip.status is None:
            trip.outcome, trip.detail = "no answer", trip.attempts[-1].error or ""
        else:
            trip.outcome, trip.detail = "refused", f"HTTP {trip.status} {_answer_text(answer)}"
        return trip

    def _send(self, request: SignedRequest, trip: _RoundTrip) -> bytes | None:
        import requests

        started = time.perf_counter()
        try:
            response = self.session.request(
                request.method,
                request.url(self.url),
                data=request.body,
                headers={"Content-Type": request.content_type} if request.content_type else {},
                timeout=self.timeout,
                allow_redirects=False,
            )
        except requests.Timeout:
            error = f"no answer within {self.timeout:g} s"
        except requests.RequestException as exc:
            error = f"connection failed: {type(exc).__name__}"
        else:
            elapsed = (time.perf_counter() - started) * 1000
            trip.attempts.append(_Attempt(response.status_code, round(elapsed, 2)))
            return response.content
        elapsed = (time.perf_counter() - started) * 1000
        trip.attempts.append(_Attempt(None, round(elapsed, 2), error))
        return None

    def _judge(self, request: SignedRequest, body: bytes, trip: _RoundTrip) -> None:
        """Check a 200 answer: the echo for a verification, else a decryptable reply."""
        if request.method == "GET":
            trip.reply = body.decode("utf-8", "replace")
            if body == request.plaintext:
                trip.outcome, trip.detail = "ok", "echo matches"
            else:
                trip.outcome, trip.detail = "bad reply", "answered 200 without the echo"
            return
        try:
            plaintext = self.signer.decrypt_reply(body, request)
        except WeComError as exc:
            trip.outcome, trip.detail = "bad reply", _failure(exc)
            return
        trip.outcome = "ok"
        if plaintext is None:
            trip.detail = "(empty reply)"
            return
        trip.reply = plaintext.decode("utf-8", "replace")
        try:
            trip.detail = repr(parse_reply(plaintext))
        except ParseError:
            trip.detail = trip.reply


def _answer_text(body: bytes | None, limit: int = 60) -> str:
    """The start of a refusal's body, on one line."""
    text = (body or b"").decode("utf-8", "replace").strip().replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _steps(
    signer: CallbackSigner,
    *,
    texts: Sequence[str],
    clicks: Sequence[str],
    subscribe: bool,
    files: Sequence[Path],
    from_user: str,
    aibot: bool,
) -> list[_Step]:
    """The callbacks of one round, in a fixed order: texts, clicks, subscribe, files."""
    send_text = signer.aibot_text if aibot else signer.text
    steps = [
        _Step(f"text {text!r}", partial(send_text, text, from_user=from_user))
        for text in texts or ([] if clicks or subscribe or files else ["hello"])
    ]
    steps += [
        _Step(f"click {key}", partial(signer.click, key, from_user=from_user)) for key in clicks
    ]
    if subscribe:
        steps.append(_Step("subscribe", partial(signer.subscribe, from_user=from_user)))
    steps += [
        _Step(f"file {path.name}", partial(signer.callback, path.read_bytes())) for path in files
    ]
    return steps


def _percentile(values: Sequence[float], percent: float) -> float | None:
    """The nearest-rank percentile of ``values``, or None when there are none."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(percent / 100 * len(ordered)) - 1)]


def _summary(trips: Sequence[_RoundTrip]) -> dict[str, Any]:
    """Counts per outcome, and p50/p99 milliseconds over every send that got an answer."""
    answered = [a.ms for t in trips for a in t.attempts if a.status is not None]
    p50, p99 = _percentile(answered, 50), _percentile(answered, 99)
    return {
        "callbacks": len(trips),
        "sent": sum(len(t.attempts) for t in trips),
        "ok": sum(t.outcome == "ok" for t in trips),
        "refused": sum(t.outcome == "refused" for t in trips),
        "no_answer": sum(t.outcome == "no answer" for t in trips),
        "bad_reply": sum(t.outcome == "bad reply" for t in trips),
        "p50_ms": None if p50 is None else round(p50, 1),
        "p99_ms": None if p99 is None else round(p99, 1),
    }


def _trip_line(trip: _RoundTrip, width: int) -> str:
    """One round trip as a line: label, status, time of the last send, reply or failure."""
    ok = trip.outcome == "ok"
    status = click.style(str(trip.status or "---"), fg="green" if ok else "red")
    ms = f"{trip.attempts[-1].ms:7.1f} ms" if trip.attempts else ""
    detail = trip.detail if ok else click.style(f"{trip.outcome}: {trip.detail}", fg="red")
    sends = f" ({len(trip.attempts)} sends)" if len(trip.attempts) > 1 else ""
    return f"  {trip.label:<{width}} {status} {ms}  {detail}{sends}"


def _summary_line(summary: dict[str, Any]) -> str:
    """The summary in words."""
    timing = (
        f"; p50 {summary['p50_ms']} ms, p99 {summary['p99_ms']} ms"
        if summary["p50_ms"] is not None
        else ""
    )
    return (
        f"{summary['callbacks']} callbacks: sent {summary['sent']}, ok {summary['ok']}, "
        f"refused {summary['refused']}, no answer {summary['no_answer']}, "
        f"bad reply {summary['bad_reply']}{timing}"
    )


@cli.command()
@click.argument("url")
@_credential_options
@click.option("--text", "texts", multiple=True, metavar="TEXT", help="Send a text message.")
@click.option("--click", "clicks", multiple=True, metavar="KEY", help="Send a menu click.")
@click.option("--subscribe", is_flag=True, help="Send a subscribe event.")
@click.option(
    "--file",
    "files",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Send this plaintext document (XML or AI-bot JSON).",
)
@click.option("--from-user", default="zhangsan", show_default=True, help="The sender's UserID.")
@click.option("--aibot", is_flag=True, help="AI bot (智能机器人): JSON envelopes and messages.")
@click.option("--no-verify", is_flag=True, help="Skip the URL verification (GET) at the start.")
@click.option(
    "--count", default=1, show_default=True, type=click.IntRange(min=1), help="Rounds to send."
)
@click.option(
    "--retries",
    default=2,
    show_default=True,
    type=click.IntRange(0, 10),
    help="Resends when no 200 arrives in time (WeCom sends 3 times in all).",
)
@click.option(
    "--timeout",
    default=5.0,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="Seconds to wait for a 200 before resending (WeCom waits 5).",
)
@_json_option
def simulate(
    url: str,
    token: str,
    encoding_aes_key: str,
    receive_id: str,
    texts: tuple[str, ...],
    clicks: tuple[str, ...],
    subscribe: bool,
    files: tuple[Path, ...],
    from_user: str,
    aibot: bool,
    no_verify: bool,
    count: int,
    retries: int,
    timeout: float,
    as_json: bool,
) -> int:
    """Send callbacks to the app at URL, signed and encrypted as WeCom does.

    First a URL verification (GET), then each round: the --text messages, the
    --click events, --subscribe, the --file documents (one text 'hello' when
    none is given). A callback without a 200 within --timeout seconds is sent
    again with the same plaintext and a fresh timestamp and nonce. Prints each
    decrypted reply with its time, then a summary; exits 1 unless every
    callback was answered correctly.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise click.BadParameter("must be an http:// or https:// URL", param_hint="URL")
    if aibot and (clicks or subscribe):
        raise click.UsageError(
            "--click and --subscribe are app events; AI bots get texts and files"
        )
    signer = _signer(token, encoding_aes_key, receive_id, aibot=aibot)
    steps = _steps(
        signer,
        texts=texts,
        clicks=clicks,
        subscribe=subscribe,
        files=files,
        from_user=from_user,
        aibot=aibot,
    )
    rounds: list[_Step] = [] if no_verify else [_Step("URL verification", signer.verification)]
    rounds += steps * count
    show_progress = len(rounds) > PROGRESS_THRESHOLD
    width = max((len(step.label) for step in rounds), default=0)
    listing = not show_progress and not as_json
    if not as_json:
        kind = "AI-bot" if aibot else "app"
        click.echo(
            f"Simulating WeCom → {url} ({kind} callbacks, receive id {receive_id!r}, "
            f"up to {1 + retries} sends of {timeout:g} s each)"
        )
    simulator = _Simulator(url, signer, retries=retries, timeout=timeout)
    trips: list[_RoundTrip] = []
    bar = (
        click.progressbar(length=len(rounds), label="sending callbacks", file=sys.stderr)
        if show_progress
        else None
    )
    with contextlib.closing(simulator), bar or contextlib.nullcontext():
        for step in rounds:
            trip = simulator.round_trip(step)
            trips.append(trip)
            if listing:
                click.echo(_trip_line(trip, width))
            if bar is not None:
                bar.update(1)
    summary = _summary(trips)
    if as_json:
        _print_json(
            {
                "url": url,
                "ok": summary["ok"] == summary["callbacks"],
                "summary": summary,
                "round_trips": [asdict(trip) | {"status": trip.status} for trip in trips],
            }
        )
    else:
        if show_progress:
            for trip in [t for t in trips if t.outcome != "ok"][:MAX_LISTED_FAILURES]:
                click.echo(_trip_line(trip, width))
        click.echo("\n" + _summary_line(summary))
    return EXIT_OK if summary["ok"] == summary["callbacks"] else EXIT_FAILED
