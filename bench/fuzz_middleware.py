"""Coverage-guided fuzzing (atheris / libFuzzer) of the whole callback request path.

The target is the Flask extension (middleware, envelope, crypto, message parsing, dedup,
router, replies) called in-process as a WSGI app. Each input is decoded into one of five
shapes, so the fuzzer spends its time past the signature check too:

* ``raw``: any method, path, query string, Content-Length and body;
* ``signed-ciphertext``: a valid signature over an arbitrary ciphertext string;
* ``plaintext``: a valid encryption of arbitrary plaintext bytes;
* ``buffer``: a valid encryption of an arbitrary decrypted buffer (padding, length prefix);
* ``envelope``: an arbitrary envelope body around a validly signed ciphertext.

Invariant: a typed refusal (400, 403, 405, 413), a 200 for signed input, the app's own
404/405/308 on other paths; never an exception or a 500. Violations are recorded (one
reproducer per distinct failure, written to ``--findings``) and the run goes on; a summary
prints at the end. Run for a set time::

    .venv/bin/python bench/fuzz_middleware.py -max_total_time=60

Each run starts from seed inputs (a valid callback of each kind, in each shape). Other
libFuzzer flags pass through (e.g. ``-runs=100000``, more corpus directories). Needs
``atheris`` (``pip install atheris``).
"""

from __future__ import annotations

import argparse
import io
import logging
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import atheris  # type: ignore[import-untyped]  # no stubs published

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

with atheris.instrument_imports(include=["flask_wecom"]):
    from flask import Flask

    from flask_wecom import WeCom
    from flask_wecom.messages import Message
    from flask_wecom.testing import CallbackSigner, SignedRequest
    from harness.forge import CORP_ID, KEY, TOKEN, encrypt_raw, frame, pad, signed_post

REFUSALS = {400, 403, 405, 413}
#: Flask's own answers on paths the middleware does not own: OPTIONS, slash redirects, 404, 405.
PASS_THROUGH = {200, 308, 404, 405}
SHAPES = ["raw", "signed-ciphertext", "plaintext", "buffer", "envelope"]
METHODS = ["GET", "POST", "PUT", "HEAD", "OPTIONS", "post"]
PATHS = ["/wecom", "/wecom/", "//wecom", "/WECOM", "/other"]


def build_app() -> Flask:
    app = Flask("fuzz")
    app.config["PROPAGATE_EXCEPTIONS"] = True  # a handler's exception is a finding, not a 500
    wecom = WeCom(app, token=TOKEN, encoding_aes_key=KEY, corp_id=CORP_ID)

    @wecom.message("text")
    def echo(message: Message) -> str:
        return f"echo: {message.content}"

    return app


logging.disable(logging.CRITICAL)  # refusals log a warning each; findings are reported below
APP = build_app()
SIGNER = CallbackSigner(TOKEN, KEY, CORP_ID)


class Stats:
    """What the run saw: inputs per shape, statuses, and distinct failures."""

    def __init__(self, findings_dir: Path, budget: float | None) -> None:
        self.started = time.monotonic()
        self.budget = budget
        self.findings_dir = findings_dir
        self.runs = 0
        self.shapes = dict.fromkeys(SHAPES, 0)
        self.statuses: dict[int, int] = {}
        #: failure signature -> (count, reproducer path, one-line description)
        self.findings: dict[str, list[Any]] = {}

    def record(self, signature: str, description: str, data: bytes) -> None:
        if signature in self.findings:
            self.findings[signature][0] += 1
            return
        path = self.findings_dir / f"finding-{len(self.findings) + 1:02d}.bin"
        path.write_bytes(data)
        self.findings[signature] = [1, path, description]
        print(f"\nNEW FINDING {description}  (reproducer {path})", flush=True)

    def report(self) -> None:
        elapsed = time.monotonic() - self.started
        print(
            f"\n== fuzz_middleware: {self.runs} inputs in {elapsed:.0f} s "
            f"({self.runs / max(elapsed, 1e-9):.0f}/s)"
        )
        print("   by shape: " + ", ".join(f"{k} {v}" for k, v in self.shapes.items()))
        print("   statuses: " + ", ".join(f"{k}: {v}" for k, v in sorted(self.statuses.items())))
        print(f"   distinct failures: {len(self.findings)}")
        for count, path, description in self.findings.values():
            print(f"   - {description}: {count} inputs, e.g. {path}")


def call(environ: dict[str, Any]) -> int:
    """Run the app like a WSGI server does; return the status code."""
    seen: list[str] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        seen.append(status)
        return lambda data: None

    result: Iterable[bytes] = APP(environ, start_response)
    try:
        b"".join(result)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    return int(seen[-1][:3])


def environ_for(
    method: str, path: str, query: str, body: bytes, content_length: str | None
) -> dict[str, Any]:
    return {
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": "",
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "CONTENT_TYPE": "text/xml",
        "CONTENT_LENGTH": str(len(body)) if content_length is None else content_length,
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": io.StringIO(),
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        "wsgi.input_terminated": True,
    }


def signed_environ(request: SignedRequest) -> dict[str, Any]:
    return environ_for("POST", "/wecom", request.query_string, request.body, None)


def decode(data: bytes) -> tuple[str, dict[str, Any], set[int]]:
    """Turn fuzzer bytes into (shape, environ, acceptable statuses).

    The first byte picks the shape; the rest is the shape's payload, read plainly so that
    seed inputs (see :func:`seeds`) are easy to write.
    """
    shape = SHAPES[data[0] % len(SHAPES)] if data else "raw"
    payload = data[1:]
    if shape == "raw":
        fdp = atheris.FuzzedDataProvider(payload)
        method = METHODS[fdp.ConsumeIntInRange(0, len(METHODS) - 1)]
        path = PATHS[fdp.ConsumeIntInRange(0, len(PATHS) - 1)]
        query = fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 200)).decode("latin-1")
        length = None if fdp.ConsumeBool() else fdp.ConsumeBytes(8).decode("latin-1")
        body = fdp.ConsumeBytes(fdp.remaining_bytes())
        expected = REFUSALS if path == "/wecom" else PASS_THROUGH
        return shape, environ_for(method, path, query, body, length), expected
    if shape == "signed-ciphertext":
        envelope = "json" if payload[:1] == b"{" else "xml"
        text = payload[1:].decode("utf-8", "replace")
        # 200 when the text happens to be a real ciphertext (the seeds are); XML may read back
        # a different string (CDATA splits, "\r" becomes "\n"), which then fails the signature.
        expected = {200, 400, 413} if envelope == "json" else {200, 400, 403, 413}
        return shape, signed_environ(signed_post(text, envelope=envelope)), expected
    if shape == "plaintext":
        return shape, signed_environ(SIGNER.callback(payload)), {200, 400}
    if shape == "buffer":
        buffer = payload + bytes(-len(payload) % 16) if payload else bytes(16)
        return shape, signed_environ(signed_post(encrypt_raw(buffer))), {200, 400}
    request = SIGNER.text("fuzz")  # envelope: the payload with "$" replaced by the ciphertext
    body = payload.replace(b"$", encrypted_of(request), 1)
    environ = environ_for("POST", "/wecom", request.query_string, body, None)
    return shape, environ, {200, 400, 403, 413}  # 403: the envelope changed the ciphertext


def encrypted_of(request: SignedRequest) -> bytes:
    return request.body.split(b"<Encrypt><![CDATA[")[1].split(b"]]>")[0]


def seeds() -> list[bytes]:
    """One valid input per shape and message kind, to start the search from."""
    plaintexts = [
        SIGNER.text("hello").plaintext,
        SIGNER.click("MENU_TODAY").plaintext,
        SIGNER.subscribe().plaintext,
        SIGNER.change_contact("update_user", {"UserID": "lisi"}).plaintext,
        SIGNER.aibot_text("hi").plaintext,
        b'{"MsgType": "text", "Content": "json form", "MsgId": 1}',
    ]
    raw = [
        b"\x00" + bytes([m, 0, 40]) + SIGNER.text("x").query_string.encode()[:40] for m in range(3)
    ]
    return [
        *raw,
        b"\x01<" + encrypted_of(SIGNER.text("x")),
        b"\x01{" + encrypted_of(SIGNER.text("x")),
        *(b"\x02" + p for p in plaintexts),
        *(b"\x03" + pad(frame(p)) for p in plaintexts),
        b"\x04<xml><ToUserName><![CDATA[ww]]></ToUserName><Encrypt><![CDATA[$]]></Encrypt></xml>",
        b"\x04<xml>\n<Encrypt>$</Encrypt>\n<AgentID>1</AgentID>\n</xml>",
        b'\x04{"encrypt": "$"}',
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--findings", type=Path, help="where reproducers go (default: a temp dir)")
    parser.add_argument("-max_total_time", type=float, help="seconds to run (then report)")
    options, libfuzzer_args = parser.parse_known_args(argv)
    findings_dir = options.findings or Path(tempfile.mkdtemp(prefix="wecom-fuzz-"))
    findings_dir.mkdir(parents=True, exist_ok=True)
    stats = Stats(findings_dir, options.max_total_time)

    def one_input(data: bytes) -> None:
        if stats.budget is not None and time.monotonic() - stats.started > stats.budget:
            stats.report()
            os._exit(1 if stats.findings else 0)
        stats.runs += 1
        shape, environ, expected = decode(data)
        stats.shapes[shape] += 1
        try:
            status = call(environ)
        except Exception as exc:
            where = traceback.extract_tb(exc.__traceback__)[-1]
            signature = f"{type(exc).__name__}@{Path(where.filename).name}:{where.lineno}"
            stats.record(signature, f"{shape}: {type(exc).__name__}: {str(exc)[:80]}", data)
            return
        stats.statuses[status] = stats.statuses.get(status, 0) + 1
        if status not in expected:
            stats.record(f"{shape}:{status}", f"{shape}: status {status}", data)

    corpus = Path(tempfile.mkdtemp(prefix="wecom-fuzz-corpus-"))
    for number, seed in enumerate(seeds()):
        (corpus / f"seed-{number:02d}").write_bytes(seed)
    libfuzzer_args.append(str(corpus))  # new interesting inputs are written here too
    if not any(arg.startswith("-timeout=") for arg in libfuzzer_args):
        libfuzzer_args.append("-timeout=5")  # an input taking longer is a hang
    atheris.Setup([sys.argv[0], *libfuzzer_args], one_input)
    atheris.Fuzz()
    stats.report()
    return 0


if __name__ == "__main__":
    sys.exit(main())
