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
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any, BinaryIO, Literal, TypeVar
from urllib.parse import urlsplit

import click

from .envelope import extract_encrypted, read_reply_envelope
from .errors import AESKeyError, ConfigError, ParseError, WeComError
from .pipeline import parse_query
from .simulate import RoundTrip, Simulator, Step, describe_failure, steps, summarize
from .testing import CallbackSigner, generate_encoding_aes_key, generate_token
from .validation import check_encoding_aes_key, check_receive_id, check_token

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

_REQUEST_PARAMETERS = ("msg_signature", "timestamp", "nonce")

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
    """One verified setting: its JSON name, whether it is usable, why, and its warnings."""

    name: str
    ok: bool
    detail: str
    warnings: tuple[str, ...] = ()


#: How ``verify`` labels each setting in its text output.
_CHECK_LABELS = {
    "token": "Token",
    "encoding_aes_key": "EncodingAESKey",
    "receive_id": "Receive id",
    "url": "URL",
}


def _validated(name: str, check: Callable[[], list[str]], detail: str) -> _Check:
    """Run one check of :mod:`flask_wecom.validation` as a :class:`_Check`."""
    try:
        warnings = check()
    except ConfigError as exc:
        return _Check(name, False, str(exc))
    return _Check(name, True, detail, tuple(warnings))


def _credential_checks(token: str, encoding_aes_key: str, receive_id: str) -> list[_Check]:
    """The Token, EncodingAESKey and receive id, checked by the shared validator."""
    return [
        _validated(
            "token",
            partial(check_token, token, "WECOM_TOKEN"),
            f"{len(token)} letters and digits",
        ),
        _validated(
            "encoding_aes_key",
            partial(check_encoding_aes_key, encoding_aes_key, "WECOM_ENCODING_AES_KEY"),
            "43 characters, a 32-byte AES key",
        ),
        _validated(
            "receive_id",
            partial(check_receive_id, receive_id, "WECOM_CORP_ID", required=False),
            receive_id or "empty: an AI bot (智能机器人) or an individual's suite",
        ),
    ]


def _http_url(url: str) -> str | None:
    """The URL's host name when it is an http(s) URL with one, else None."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:  # e.g. an unclosed IPv6 bracket or a bad port
        return None
    return host if parts.scheme in ("http", "https") and host else None


def _check_url(url: str) -> _Check:
    hostname = _http_url(url)
    if hostname is None:
        return _Check("url", False, "must be an http:// or https:// URL with a host name")
    try:
        local = hostname == "localhost" or not ipaddress.ip_address(hostname).is_global
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

    A Token is 1 to 32 letters and digits (a warning below 16); an EncodingAESKey
    is 43 characters of base64 (a warning for '+' and '/', which the admin console
    never makes). Exits 1 when a check fails; warnings alone exit 0.
    """
    checks = _credential_checks(token, encoding_aes_key, receive_id)
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
        for warning in check.warnings:
            click.echo(f"{click.style('warn', fg='yellow')} {warning}")
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
    """The parameters of a query string or full URL, as the middleware reads them."""
    try:
        return parse_query(query.split("?", 1)[1] if "?" in query else query)
    except ParseError as exc:
        raise click.UsageError(f"--query: {exc}") from exc


def _is_reply_envelope(body: bytes) -> bool:
    """True for a passive-reply envelope (it carries its own signature)."""
    try:
        read_reply_envelope(body)
    except ParseError:
        return False
    return True


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
            _print_json({"ok": False, "reason": exc.reason, "error": describe_failure(exc)})
        else:
            click.echo(f"error: {describe_failure(exc)}", err=True)
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


def _trip_line(trip: RoundTrip, width: int) -> str:
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
    if _http_url(url) is None:
        raise click.BadParameter("must be an http:// or https:// URL", param_hint="URL")
    if aibot and (clicks or subscribe):
        raise click.UsageError(
            "--click and --subscribe are app events; AI bots get texts and files"
        )
    signer = _signer(token, encoding_aes_key, receive_id, aibot=aibot)
    plan = steps(
        signer,
        texts=texts,
        clicks=clicks,
        subscribe=subscribe,
        files=files,
        from_user=from_user,
        aibot=aibot,
    )
    rounds: list[Step] = [] if no_verify else [Step("URL verification", signer.verification)]
    rounds += plan * count
    show_progress = len(rounds) > PROGRESS_THRESHOLD
    width = max((len(step.label) for step in rounds), default=0)
    listing = not show_progress and not as_json
    if not as_json:
        kind = "AI-bot" if aibot else "app"
        click.echo(
            f"Simulating WeCom → {url} ({kind} callbacks, receive id {receive_id!r}, "
            f"up to {1 + retries} sends of {timeout:g} s each)"
        )
    try:
        simulator = Simulator(url, signer, retries=retries, timeout=timeout)
    except ImportError as exc:
        raise click.ClickException(
            "simulate needs requests: pip install 'flask-wecom[client]'"
        ) from exc
    trips: list[RoundTrip] = []
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
    summary = summarize(trips)
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
