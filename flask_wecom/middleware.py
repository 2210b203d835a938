"""WSGI middleware: WeCom callbacks for any WSGI application (plain WSGI, Flask, Django).

With a :class:`~flask_wecom.receivers.Receiver`, the middleware is the whole product:
verification, retry dedup, routing, the 5-second deadline, late replies, AI-bot streams
and suite acknowledgements, all from :class:`~flask_wecom.pipeline.Pipeline`::

    receiver = Receiver()

    @receiver.message("text")
    def echo(message):
        return f"echo: {message.content}"

    crypto = WeComCrypto(token, encoding_aes_key, receive_id=corp_id)
    application = WeComMiddleware(application, crypto, path="/wecom", receiver=receiver)

Without one, it only verifies, decrypts and encrypts: the wrapped app gets the plaintext
as its request body (``wsgi.input``) with these environ keys, and its 2xx response body is
taken as the plaintext reply, sent back encrypted and signed:

``wecom.plaintext``  the decrypted document (bytes)
``wecom.message``    the parsed :class:`~flask_wecom.messages.Message`
``wecom.endpoint``   the matched :class:`~flask_wecom.pipeline.Endpoint`
``wecom.credential`` index of the credential set that verified it (0 = first)
``wecom.receive_id`` the receive id inside the ciphertext
``wecom.dedup``      the retry dedup verdict (``"first"``, ``"bypass"``) or None
``wecom.orig``       the original ``body``, ``CONTENT_TYPE`` and ``CONTENT_LENGTH``

Requests to other paths pass through untouched. Bad input is refused with 400, 403, 405
or 413, never a 500, logged once at WARNING without plaintext or keys. This module only
translates between WSGI and the pipeline; it imports nothing from any web framework.
"""

from __future__ import annotations

import functools
import io
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from .crypto import WeComCrypto
from .dedup import Claim, Deduplicator
from .envelope import EnvelopeFormat
from .errors import ParseError, PayloadTooLarge
from .pipeline import (
    CONTENT_TYPES,
    DEFAULT_MAX_BODY,
    DEFAULT_MAX_ENVELOPE,
    DEFAULT_TOLERANCE,
    Answer,
    Endpoint,
    Outcome,
    OutcomeHook,
    Pipeline,
    Verified,
)
from .receivers import Receiver
from .runner import Runner
from .stores import Store
from .wiring import pipeline_from_config

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

__all__ = [
    "DEFAULT_MAX_BODY",
    "DEFAULT_TOLERANCE",
    "Endpoint",
    "Outcome",
    "OutcomeHook",
    "WeComMiddleware",
]


class WeComMiddleware:
    """WSGI middleware that speaks WeCom's callback protocol on chosen paths.

    :param app: the WSGI application to wrap (other paths go to it).
    :param crypto: credentials for a single endpoint at ``path`` (one
        :class:`WeComCrypto`, or several during a key rotation); leave out when
        passing ``endpoints``.
    :param path: the single endpoint's path.
    :param format: the single endpoint's reply envelope (default: the receiver's, else xml).
    :param receiver: the single endpoint's handlers; None: the wrapped app answers it.
    :param endpoints: further :class:`Endpoint` objects, each on its own path.
    :param pipeline: a ready :class:`~flask_wecom.pipeline.Pipeline` to translate for
        (its endpoints may be added later); the other options are then not given.
    :param options: the :class:`~flask_wecom.pipeline.Pipeline`'s: ``dedup``, ``store``,
        ``runner``, ``streams``, ``max_body``, ``max_envelope``, ``tolerance``, ``clock``,
        ``hooks``, ``url_check``.
    """

    def __init__(
        self,
        app: WSGIApplication,
        crypto: WeComCrypto | Sequence[WeComCrypto] | None = None,
        *,
        path: str = "/wecom",
        format: EnvelopeFormat | None = None,
        receiver: Receiver | None = None,
        endpoints: Iterable[Endpoint] = (),
        dedup: Deduplicator | bool = True,
        store: Store | None = None,
        runner: Runner | None = None,
        streams: Runner | None = None,
        max_body: int = DEFAULT_MAX_BODY,
        max_envelope: int = DEFAULT_MAX_ENVELOPE,
        tolerance: float = DEFAULT_TOLERANCE,
        clock: Callable[[], float] | None = None,
        hooks: Iterable[OutcomeHook] = (),
        url_check: bool = True,
        pipeline: Pipeline | None = None,
    ) -> None:
        self.app = app
        mounted = list(endpoints)
        if crypto is not None:
            mounted.insert(0, Endpoint(path, crypto, format, receiver=receiver))
        if pipeline is not None:
            for endpoint in mounted:
                pipeline.add_endpoint(endpoint)
            #: The framework-free pipeline doing the work.
            self.pipeline = pipeline
            return
        if not mounted:
            raise ValueError("WeComMiddleware needs crypto or at least one endpoint")
        self.pipeline = Pipeline(
            mounted,
            dedup=dedup,
            store=store,
            runner=runner,
            streams=streams,
            max_body=max_body,
            max_envelope=max_envelope,
            tolerance=tolerance,
            hooks=hooks,
            url_check=url_check,
            **({"clock": clock} if clock else {}),
        )

    @classmethod
    def from_config(
        cls,
        app: WSGIApplication,
        *receivers: Receiver,
        config: Mapping[str, Any] | None = None,
        hooks: Iterable[OutcomeHook] = (),
    ) -> WeComMiddleware:
        """The middleware for ``receivers``, configured like the Flask extension.

        Each receiver reads its kind's keys (``WECOM_TOKEN``, ``WECOM_AIBOT_TOKEN`` ...) from
        ``config`` (default: the environment); the app-wide ones are ``WECOM_*``::

            application = WeComMiddleware.from_config(get_wsgi_application(), receiver)

        :raises ConfigError: a key is missing or malformed (the message names it).
        """
        return cls(
            app,
            pipeline=pipeline_from_config(
                receivers, os.environ if config is None else config, hooks=hooks
            ),
        )

    @property
    def endpoints(self) -> tuple[Endpoint, ...]:
        """The mounted endpoints."""
        return self.pipeline.endpoints

    @property
    def hooks(self) -> list[OutcomeHook]:
        """The outcome hooks; append to add one."""
        return self.pipeline.hooks

    @property
    def dedup(self) -> Deduplicator | None:
        """The retry dedup, or None."""
        return self.pipeline.dedup

    def add_endpoint(self, endpoint: Endpoint) -> None:
        """Mount another endpoint; its path must be free."""
        self.pipeline.add_endpoint(endpoint)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        """The WSGI application: callbacks to a mounted path go through the pipeline, any
        other request to the wrapped app."""
        endpoint = self.pipeline.endpoint(environ.get("PATH_INFO") or "/")
        if endpoint is None:
            return self.app(environ, start_response)
        answer = self.pipeline.handle(
            endpoint,
            environ.get("REQUEST_METHOD", "GET").upper(),
            environ.get("QUERY_STRING", ""),
            lambda limit: _read_body(environ, limit),
            environ.get("REMOTE_ADDR", "?"),
            lambda verified, claim: self._run_app(environ, verified, claim),
        )
        return _send(answer, start_response)

    def _run_app(
        self, environ: WSGIEnvironment, verified: Verified, claim: Claim | None
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        """Call the wrapped app on the plaintext; return its status, headers and whole body."""
        plaintext = verified.plaintext
        environ.update(
            {
                "wsgi.input": io.BytesIO(plaintext),
                "CONTENT_LENGTH": str(len(plaintext)),
                "CONTENT_TYPE": CONTENT_TYPES["json" if verified.message.is_aibot else "xml"],
                "wecom.plaintext": plaintext,
                "wecom.message": verified.message,
                "wecom.endpoint": verified.endpoint,
                "wecom.credential": verified.credential,
                "wecom.receive_id": verified.receive_id,
                "wecom.dedup": claim.state if claim else None,
            }
        )
        response: dict[str, Any] = {}
        chunks: list[bytes] = []

        def capture(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Callable[[bytes], object]:
            # Nothing is sent before the app returns, so a later call (with exc_info)
            # simply replaces the status and headers, as PEP 3333 allows.
            response["status"], response["headers"] = status, headers
            return chunks.append

        result = self.app(environ, capture)
        try:
            chunks.extend(result)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        if "status" not in response:
            raise RuntimeError("the wrapped WSGI app returned without calling start_response")
        headers = [(k, v) for k, v in response["headers"] if k.lower() != "content-length"]
        return int(response["status"][:3]), headers, b"".join(chunks)


def _read_body(environ: WSGIEnvironment, limit: int) -> bytes:
    """Read the request body, refusing more than ``limit`` bytes (PEP 3333 rules)."""
    length_header = environ.get("CONTENT_LENGTH") or ""
    stream = environ["wsgi.input"]
    if length_header:
        if not (length_header.isascii() and length_header.isdigit()):
            raise ParseError("Content-Length is not a number")
        # Compare digit counts first: int() of thousands of digits is itself an attack.
        length = int(length_header) if len(length_header) <= 18 else limit + 1
        if length > limit:
            raise PayloadTooLarge(f"body of {length} bytes over {limit}")
        body = bytes(stream.read(length)) if length else b""
    elif environ.get("wsgi.input_terminated"):
        body = bytes(stream.read(limit + 1))
        if len(body) > limit:
            raise PayloadTooLarge(f"body over {limit} bytes")
    else:
        body = b""  # no length and no terminated stream: PEP 3333 says read nothing
    environ["wecom.orig"] = {
        "body": body,
        "CONTENT_TYPE": environ.get("CONTENT_TYPE", ""),
        "CONTENT_LENGTH": length_header,
    }
    return body


@functools.lru_cache(maxsize=64)
def _status_line(status: int) -> str:
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return f"{status} Unknown"


def _send(answer: Answer, start_response: StartResponse) -> list[bytes]:
    """Start the response with the right Content-Length and return the body."""
    status, headers, body = answer
    start_response(_status_line(status), [*headers, ("Content-Length", str(len(body)))])
    return [body]
