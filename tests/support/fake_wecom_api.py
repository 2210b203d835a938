"""A fake WeCom server API on a real loopback HTTP server, for tests of flask_wecom.client.

It speaks the documented shapes of ``gettoken``, ``message/send``, ``message/recall`` and
``menu/create|get|delete`` (spec §6), checks credentials and tokens the way WeCom does, and
can be told to answer the next calls with an errcode. Three ways to use it:

- the pytest fixture ``fake_wecom_api``: a :class:`FakeWeComAPI` serving from a thread;
- :class:`FakeWeComAPIProcess`: the same server in a subprocess, for tests that run the
  library in other processes (gunicorn workers). Run it by hand with
  ``python -m tests.support.fake_wecom_api --port 0``; it prints its URL on the first line;
- from any process, :class:`FakeWeComAPIRemote` drives a running server over HTTP.

All three share the control methods of :class:`FakeWeComControls` (state, fail_next,
revoke_tokens, configure, reset); the remote ones travel as ``POST /_fake/<action>`` with
a JSON body. ``GET /_fake/state`` works too, e.g. from curl.

Errcodes only the fake uses for its own checks follow the WeCom global table: 40013
invalid corpid, 40001 invalid secret, 41001 missing access_token, 40014 invalid
access_token, 42001 expired access_token, 40056 invalid agentid, 46003 no menu.
"""

from __future__ import annotations

import argparse
import json
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit
from urllib.request import Request, urlopen

import pytest

from flask_wecom.client import WeComClient
from flask_wecom.stores import MemoryStore

__all__ = [
    "FAKE_AGENT_ID",
    "FAKE_CORP_ID",
    "FAKE_SECRET",
    "FakeWeComAPI",
    "FakeWeComAPIProcess",
    "FakeWeComAPIRemote",
    "FakeWeComControls",
    "fake_wecom_api",
    "fake_wecom_api_process",
    "wecom_client_factory",
    "wecom_settings",
]

FAKE_CORP_ID = "ww0000fakecorp01"
FAKE_SECRET = "fake-secret-abcdefghijklmnopqrstuvwxyz0123456"
FAKE_AGENT_ID = 1000002

Json = dict[str, Any]


def wecom_settings(api_url: str) -> dict[str, str]:
    """``WECOM_*`` settings for an app whose callbacks and API calls reach the fake at ``api_url``.

    The callback credentials are the test suite's usual ones (tests/test_crypto.py).
    """
    from tests.support.vectors import KEY, TOKEN

    return {
        "WECOM_TOKEN": TOKEN,
        "WECOM_ENCODING_AES_KEY": KEY,
        "WECOM_CORP_ID": FAKE_CORP_ID,
        "WECOM_SECRET": FAKE_SECRET,
        "WECOM_AGENT_ID": str(FAKE_AGENT_ID),
        "WECOM_API_BASE_URL": api_url,
    }


#: The WeCom endpoints the fake serves, as (method, path).
_ENDPOINTS = {
    ("GET", "/cgi-bin/gettoken"),
    ("POST", "/cgi-bin/message/send"),
    ("POST", "/cgi-bin/message/recall"),
    ("POST", "/cgi-bin/menu/create"),
    ("GET", "/cgi-bin/menu/get"),
    ("GET", "/cgi-bin/menu/delete"),
    ("POST", "/cgi-bin/aibot/response"),
}


class _FakeState:
    """Everything the fake remembers, behind one lock; every method is one atomic step."""

    def __init__(self, corp_id: str, secret: str) -> None:
        self.corp_id = corp_id
        self.secret = secret
        self._lock = threading.Lock()
        self.reset({})

    def reset(self, _body: Json) -> Json:
        """Forget tokens, calls, messages, menus, injected failures; restore default settings."""
        with self._lock:
            self._expires_in = 7200
            self._delays: dict[str, float] = {}  # path -> seconds before answering
            self._tokens: dict[str, float] = {}  # token -> expiry (time.time)
            self._calls: dict[str, int] = {}
            self._messages: list[Json] = []
            self._raw_bodies: list[str] = []
            self._recalled: list[str] = []
            self._menus: dict[str, Json] = {}
            self._failures: list[Json] = []  # {"errcode", "errmsg", "times", "path"}
            self._aibot_responses: list[Json] = []
            self._used_response_codes: set[str] = set()
        return {}

    def configure(self, body: Json) -> Json:
        """Set ``expires_in`` of new tokens and ``delays``: seconds before answering, per path."""
        with self._lock:
            self._expires_in = int(body.get("expires_in", self._expires_in))
            self._delays.update(body.get("delays", {}))
        return {}

    def delay(self, path: str) -> float:
        """Seconds to wait before answering a call to ``path``."""
        with self._lock:
            return self._delays.get(path, 0.0)

    def fail_next(self, body: Json) -> Json:
        """Answer the next ``times`` calls (to ``path``, or any path) with ``errcode``."""
        with self._lock:
            self._failures.append(
                {
                    "errcode": int(body["errcode"]),
                    "errmsg": str(body.get("errmsg", "injected failure")),
                    "times": int(body.get("times", 1)),
                    "path": body.get("path"),
                }
            )
        return {}

    def revoke_tokens(self, _body: Json) -> Json:
        """Invalidate every issued token early, as WeCom may do (later calls get 40014)."""
        with self._lock:
            self._tokens.clear()
        return {}

    def snapshot(self, _body: Json) -> Json:
        """Everything a test may assert on, as JSON: calls per path, messages, menus, recalls."""
        with self._lock:
            return {
                "calls": dict(self._calls),
                "messages": list(self._messages),
                "raw_bodies": list(self._raw_bodies),
                "recalled": list(self._recalled),
                "menus": dict(self._menus),
                "aibot_responses": list(self._aibot_responses),
            }

    def count_call(self, path: str) -> Json | None:
        """Count a call to ``path``; return the injected failure it must answer, if any."""
        with self._lock:
            self._calls[path] = self._calls.get(path, 0) + 1
            for failure in self._failures:
                if failure["path"] in (None, path):
                    failure["times"] -= 1
                    if failure["times"] == 0:
                        self._failures.remove(failure)
                    return {"errcode": failure["errcode"], "errmsg": failure["errmsg"]}
        return None

    def issue_token(self, corp_id: str, secret: str) -> Json:
        """Answer gettoken: check the credentials, then issue a new token."""
        if corp_id != self.corp_id:
            return {"errcode": 40013, "errmsg": "invalid corpid"}
        if secret != self.secret:
            return {"errcode": 40001, "errmsg": "invalid credential"}
        token = secrets.token_urlsafe(48)
        with self._lock:
            expires_in = self._expires_in
            self._tokens[token] = time.time() + expires_in
        return {"errcode": 0, "errmsg": "ok", "access_token": token, "expires_in": expires_in}

    def check_token(self, token: str | None) -> Json | None:
        """Return the error answer for a missing, unknown or expired token, or None if valid."""
        if not token:
            return {"errcode": 41001, "errmsg": "access_token missing"}
        with self._lock:
            expires_at = self._tokens.get(token)
        if expires_at is None:
            return {"errcode": 40014, "errmsg": "invalid access_token"}
        if expires_at <= time.time():
            return {"errcode": 42001, "errmsg": "access_token expired"}
        return None

    def record_message(self, raw: str, message: Json) -> Json:
        """Keep a message/send body; answer with the documented response shape."""
        msgid = secrets.token_urlsafe(24)
        with self._lock:
            self._raw_bodies.append(raw)
            self._messages.append(message)
        answer: Json = {
            "errcode": 0,
            "errmsg": "ok",
            "invaliduser": "",
            "invalidparty": "",
            "invalidtag": "",
            "unlicenseduser": "",
            "msgid": msgid,
        }
        if message.get("msgtype") == "template_card":
            answer["response_code"] = secrets.token_urlsafe(24)
        return answer

    def record_aibot_response(self, response_code: str, body: Json) -> Json:
        """An AI bot's active reply: each response_code works once (doc 101138)."""
        with self._lock:
            if not response_code or response_code in self._used_response_codes:
                return {"errcode": 40001, "errmsg": "invalid response_code"}
            self._used_response_codes.add(response_code)
            self._aibot_responses.append(body)
        return {"errcode": 0, "errmsg": "ok"}

    def record_recall(self, msgid: str) -> Json:
        """Keep a recalled msgid."""
        with self._lock:
            self._recalled.append(msgid)
        return {"errcode": 0, "errmsg": "ok"}

    def menu(self, action: str, agent_id: str, body: Json) -> Json:
        """Create, get or delete the menu of one agent."""
        if not agent_id.isdigit():
            return {"errcode": 40056, "errmsg": "invalid agentid"}
        with self._lock:
            if action == "create":
                self._menus[agent_id] = body
            elif action == "delete":
                self._menus.pop(agent_id, None)
            elif agent_id in self._menus:
                return {"errcode": 0, "errmsg": "ok", **self._menus[agent_id]}
            else:
                return {"errcode": 46003, "errmsg": "menu no exist"}
        return {"errcode": 0, "errmsg": "ok"}


class _Handler(BaseHTTPRequestHandler):
    """Routes one request to the fake's state. The server object carries the state."""

    server: _Server
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        """Serve gettoken, menu/get, menu/delete and the state snapshot."""
        self._serve()

    def do_POST(self) -> None:
        """Serve message/send, message/recall, menu/create and the control actions."""
        self._serve()

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet: request lines hold tokens and secrets, and tests read stderr."""

    def _serve(self) -> None:
        if self.server.stopped:  # a kept-alive connection outlives shutdown(): drop it
            self.close_connection = True
            return
        url = urlsplit(self.path)
        query = {name: values[0] for name, values in parse_qs(url.query).items()}
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length).decode("utf-8") if length else ""
        self._answer(self.server.answer(self.command, url.path, query, raw))

    def _answer(self, answer: tuple[HTTPStatus, Json]) -> None:
        status, body = answer
        data = json.dumps(body, ensure_ascii=False).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class _Server(ThreadingHTTPServer):
    """The loopback HTTP server: one thread per connection, one shared :class:`_FakeState`."""

    daemon_threads = True

    def __init__(self, port: int, state: _FakeState) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.state = state
        #: Set by FakeWeComAPI.stop(): requests on open connections then go unanswered.
        self.stopped = False

    def answer(
        self, method: str, path: str, query: dict[str, str], raw: str
    ) -> tuple[HTTPStatus, Json]:
        """Dispatch one request; return the HTTP status and the JSON body."""
        state = self.state
        body: Json = json.loads(raw) if raw else {}
        controls: dict[str, Callable[[Json], Json]] = {
            "/_fake/state": state.snapshot,
            "/_fake/reset": state.reset,
            "/_fake/configure": state.configure,
            "/_fake/fail_next": state.fail_next,
            "/_fake/revoke_tokens": state.revoke_tokens,
        }
        if path in controls:
            return HTTPStatus.OK, controls[path](body)
        if (method, path) not in _ENDPOINTS:
            return HTTPStatus.NOT_FOUND, {"error": f"no fake for {method} {path}"}
        injected = state.count_call(path)
        time.sleep(state.delay(path))
        if injected is not None:
            return HTTPStatus.OK, injected
        if path == "/cgi-bin/aibot/response":  # authorised by response_code, not a token
            return HTTPStatus.OK, state.record_aibot_response(query.get("response_code", ""), body)
        if path == "/cgi-bin/gettoken":
            return HTTPStatus.OK, state.issue_token(
                query.get("corpid", ""), query.get("corpsecret", "")
            )
        token_error = state.check_token(query.get("access_token"))
        if token_error is not None:
            return HTTPStatus.OK, token_error
        if path == "/cgi-bin/message/send":
            return HTTPStatus.OK, state.record_message(raw, body)
        if path == "/cgi-bin/message/recall":
            return HTTPStatus.OK, state.record_recall(str(body.get("msgid", "")))
        return HTTPStatus.OK, state.menu(path.rsplit("/", 1)[1], query.get("agentid", ""), body)


class FakeWeComControls:
    """The control methods every handle on a fake offers; subclasses say how to reach it.

    :param url: the fake's base URL.
    :param corp_id: the corpid its gettoken accepts.
    :param secret: the corpsecret its gettoken accepts.
    """

    def __init__(self, url: str, corp_id: str, secret: str) -> None:
        #: Base URL to pass as ``WeComClient(base_url=...)``.
        self.url = url
        #: The corpid gettoken accepts.
        self.corp_id = corp_id
        #: The corpsecret gettoken accepts.
        self.secret = secret

    def _control(self, action: str, body: Json) -> Json:
        raise NotImplementedError

    def state(self) -> Json:
        """Calls per path, message/send bodies (parsed and raw), recalled msgids, menus."""
        return self._control("state", {})

    def sent_messages(self, count: int, timeout: float = 5.0) -> list[Json]:
        """Wait until ``count`` message/send calls arrived; return their bodies."""
        deadline = time.monotonic() + timeout
        while True:
            messages: list[Json] = self.state()["messages"]
            if len(messages) >= count or time.monotonic() >= deadline:
                break
            time.sleep(0.02)
        if len(messages) < count:
            raise AssertionError(f"only {len(messages)} of {count} messages arrived")
        return messages

    def calls(self, path: str) -> int:
        """How many times ``path`` (e.g. ``"/cgi-bin/gettoken"``) was called."""
        count: int = self.state()["calls"].get(path, 0)
        return count

    def fail_next(self, errcode: int, *, times: int = 1, path: str | None = None) -> None:
        """Answer the next ``times`` calls to ``path`` (any path if None) with ``errcode``."""
        self._control("fail_next", {"errcode": errcode, "times": times, "path": path})

    def revoke_tokens(self) -> None:
        """Invalidate every issued token early; later calls with them get 40014."""
        self._control("revoke_tokens", {})

    def configure(
        self, *, expires_in: int | None = None, delays: dict[str, float] | None = None
    ) -> None:
        """Set ``expires_in`` of new tokens, and seconds to wait before answering a path.

        A delayed call is counted (and picks its injected failure) before the wait, so a
        test can act while the call is in flight.
        """
        settings = {"expires_in": expires_in, "delays": delays}
        self._control("configure", {k: v for k, v in settings.items() if v is not None})

    def reset(self) -> None:
        """Forget everything and restore the default settings."""
        self._control("reset", {})


class FakeWeComAPI(FakeWeComControls):
    """The fake served from a thread of this process; use as a context manager.

    :param corp_id: the corpid gettoken accepts.
    :param secret: the corpsecret gettoken accepts.
    :param port: the port to listen on; 0 picks a free one.
    """

    def __init__(
        self, corp_id: str = FAKE_CORP_ID, secret: str = FAKE_SECRET, *, port: int = 0
    ) -> None:
        self._server = _Server(port, _FakeState(corp_id, secret))
        super().__init__(f"http://127.0.0.1:{self._server.server_address[1]}", corp_id, secret)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def _control(self, action: str, body: Json) -> Json:
        return self._server.answer("POST", f"/_fake/{action}", {}, json.dumps(body))[1]

    def start(self) -> FakeWeComAPI:
        """Start serving; return self."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket; calling it again does nothing."""
        self._server.stopped = True
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join()
        self._server.server_close()

    def __enter__(self) -> FakeWeComAPI:
        """Start serving."""
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        """Stop serving."""
        self.stop()


class FakeWeComAPIRemote(FakeWeComControls):
    """Controls for a fake running elsewhere (another process), reached over HTTP.

    :param url: the fake's base URL, as printed by ``python -m tests.support.fake_wecom_api``.
    :param corp_id: the corpid it was started with.
    :param secret: the corpsecret it was started with.
    """

    def __init__(self, url: str, corp_id: str = FAKE_CORP_ID, secret: str = FAKE_SECRET) -> None:
        super().__init__(url, corp_id, secret)

    def _control(self, action: str, body: Json) -> Json:
        request = Request(
            f"{self.url}/_fake/{action}",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urlopen(request, timeout=10) as response:
            answer: Json = json.load(response)
        return answer


class FakeWeComAPIProcess(FakeWeComAPIRemote):
    """The fake in a subprocess (``python -m tests.support.fake_wecom_api``); a context manager.

    :param corp_id: the corpid gettoken accepts.
    :param secret: the corpsecret gettoken accepts.
    """

    def __init__(self, corp_id: str = FAKE_CORP_ID, secret: str = FAKE_SECRET) -> None:
        self._process = subprocess.Popen(
            [
                sys.executable,
                *("-m", "tests.support.fake_wecom_api", "--port", "0"),
                *("--corp-id", corp_id, "--secret", secret),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._process.stdout is not None
        super().__init__(self._process.stdout.readline().strip(), corp_id, secret)

    def stop(self) -> None:
        """Terminate the subprocess and wait for it."""
        self._process.terminate()
        self._process.wait(timeout=10)
        assert self._process.stdout is not None
        self._process.stdout.close()

    def __enter__(self) -> FakeWeComAPIProcess:
        """Return the handle; the subprocess is already serving."""
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Terminate the subprocess."""
        self.stop()


@pytest.fixture
def fake_wecom_api(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeWeComAPI]:
    """A fresh fake WeCom API on 127.0.0.1, serving from a thread, with the FAKE_* credentials.

    Its ``http://`` origin is added to the accepted ``response_url`` origins (as a private
    deployment adds its own), so AI-bot active replies reach it.
    """
    from flask_wecom import client

    with FakeWeComAPI() as api:
        monkeypatch.setattr(client, "RESPONSE_URL_ORIGINS", (*client.RESPONSE_URL_ORIGINS, api.url))
        yield api


@pytest.fixture
def fake_wecom_api_process() -> Iterator[FakeWeComAPIProcess]:
    """A fresh fake WeCom API in a subprocess, with the FAKE_* credentials."""
    with FakeWeComAPIProcess() as api:
        yield api


@pytest.fixture
def wecom_client_factory(
    fake_wecom_api: FakeWeComAPI,
) -> Iterator[Callable[..., WeComClient]]:
    """Build WeComClients for ``fake_wecom_api``; closed at teardown.

    Defaults: the fake's credentials and URL, agent id FAKE_AGENT_ID and a fresh
    MemoryStore; keyword arguments override them.
    """
    clients: list[WeComClient] = []

    def make_client(**overrides: Any) -> WeComClient:
        options: dict[str, Any] = {
            "corp_id": fake_wecom_api.corp_id,
            "secret": fake_wecom_api.secret,
            "agent_id": FAKE_AGENT_ID,
            "base_url": fake_wecom_api.url,
            "store": MemoryStore(),
            **overrides,
        }
        client = WeComClient(**options)
        clients.append(client)
        return client

    yield make_client
    for client in clients:
        client.close()


def main(argv: list[str] | None = None) -> int:
    """Serve the fake until terminated; print its base URL as the first line of stdout."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--corp-id", default=FAKE_CORP_ID)
    parser.add_argument("--secret", default=FAKE_SECRET)
    args = parser.parse_args(argv)
    server = _Server(args.port, _FakeState(args.corp_id, args.secret))
    print(f"http://127.0.0.1:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
