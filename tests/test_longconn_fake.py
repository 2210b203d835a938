"""The fake long-connection server follows the protocol notes' checklist (spec §9).

A raw WebSocket client speaks to it, frame by frame, so these tests pin the server's rules
independently of flask_wecom's own transport.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from flask_wecom.crypto import decrypt_media
from flask_wecom.testing_longconn import (
    ERR_EXPIRED_STREAM,
    ERR_INVALID_CHATID,
    ERR_INVALID_REQ_ID,
    ERR_NOT_SUBSCRIBED,
    ERR_QUOTA,
    ERR_TOO_LONG,
    ERR_UNAUTHORIZED,
    FakeLongConnServer,
)

BOT, SECRET = "aibFAKE", "S3CRET"


class Clock:
    """A settable clock for the server's protocol windows."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def server(clock: Clock) -> Iterator[FakeLongConnServer]:
    with FakeLongConnServer(BOT, SECRET, clock=clock, displaced_close_delay=0.3) as fake:
        yield fake


def ask(ws: ClientConnection, cmd: str, body: Any = None, req_id: str = "") -> dict[str, Any]:
    """Send one frame and return the ack with the same req_id (skipping pushes)."""
    req_id = req_id or f"{cmd}_{time.monotonic_ns()}"
    frame: dict[str, Any] = {"cmd": cmd, "headers": {"req_id": req_id}}
    if body is not None:
        frame["body"] = body
    ws.send(json.dumps(frame))
    while True:
        answer = json.loads(ws.recv(3))
        if "cmd" not in answer and answer["headers"]["req_id"] == req_id:
            return answer  # type: ignore[no-any-return]


@contextmanager
def subscribed(server: FakeLongConnServer) -> Iterator[ClientConnection]:
    """A raw connection that holds the bot."""
    with connect(server.url) as ws:
        assert ask(ws, "aibot_subscribe", {"bot_id": BOT, "secret": SECRET})["errcode"] == 0
        yield ws


def markdown(text: str) -> dict[str, Any]:
    return {"msgtype": "markdown", "markdown": {"content": text}}


def stream(stream_id: str, content: str, finish: bool = False) -> dict[str, Any]:
    return {"msgtype": "stream", "stream": {"id": stream_id, "content": content, "finish": finish}}


def test_subscribe_answers_match_the_documented_frames(server: FakeLongConnServer) -> None:
    with connect(server.url) as ws:
        assert ask(ws, "ping", req_id="ping_1") == {
            "headers": {"req_id": "ping_1"},
            "errcode": 0,
            "errmsg": "ok",
        }
        assert ask(ws, "aibot_send_msg", markdown("x"))["errcode"] == ERR_NOT_SUBSCRIBED
        refused = ask(ws, "aibot_subscribe", {"bot_id": BOT, "secret": "bad"}, "sub_1")
        assert refused == {
            "headers": {"req_id": "sub_1"},
            "errcode": ERR_UNAUTHORIZED,
            "errmsg": "invalid bot_id or secret",
        }
        assert ask(ws, "ping")["errcode"] == 0  # the socket stays open after a refusal
        assert ask(ws, "aibot_subscribe", {"bot_id": BOT, "secret": SECRET})["errcode"] == 0
    assert (server.subscribes, server.refused_subscribes) == (1, 1)


@pytest.mark.parametrize(
    "close_frame", [pytest.param(False, id="tcp"), pytest.param(True, id="frame")]
)
def test_a_new_subscribe_displaces_the_old_connection(
    server: FakeLongConnServer, close_frame: bool
) -> None:
    server.displaced_close_frame = close_frame
    with subscribed(server) as old, subscribed(server) as new:
        displaced(server, old, new, close_frame)
    assert server.kicks == 1 and server.max_owners == 1


def displaced(
    server: FakeLongConnServer, old: ClientConnection, new: ClientConnection, close_frame: bool
) -> None:
    """What the displaced connection ``old`` sees, and where callbacks go now."""
    event = json.loads(old.recv(3))
    assert event["cmd"] == "aibot_event_callback"
    assert event["body"]["event"] == {"eventtype": "disconnected_event"}
    assert "from" not in event["body"]
    assert ask(old, "ping")["errcode"] == 0  # heartbeats are still acked
    assert ask(old, "aibot_send_msg", {"chatid": "x", **markdown("x")})["errcode"] == (
        ERR_NOT_SUBSCRIBED
    )
    with pytest.raises(ConnectionClosed) as closed:
        old.recv(3)
    assert (closed.value.rcvd is not None) is close_frame
    req_id = server.push_message("to the new one")
    assert json.loads(new.recv(3))["headers"]["req_id"] == req_id


@pytest.mark.parametrize(
    ("callback", "cmd", "body", "errcode"),
    [
        pytest.param("message", "aibot_respond_msg", markdown("hi"), 0, id="reply-to-message"),
        pytest.param(
            "enter_chat",
            "aibot_respond_msg",
            markdown("hi"),
            ERR_INVALID_REQ_ID,
            id="reply-to-event",
        ),
        pytest.param(
            "enter_chat",
            "aibot_respond_welcome_msg",
            {"msgtype": "text", "text": {"content": "hi"}},
            0,
            id="welcome",
        ),
        pytest.param(
            "message",
            "aibot_respond_welcome_msg",
            {"msgtype": "text", "text": {"content": "hi"}},
            ERR_INVALID_REQ_ID,
            id="welcome-to-message",
        ),
        pytest.param(
            "template_card_event",
            "aibot_respond_update_msg",
            {"response_type": "update_template_card", "template_card": {}},
            0,
            id="card-update",
        ),
        pytest.param(
            "unknown", "aibot_respond_msg", markdown("hi"), ERR_INVALID_REQ_ID, id="unknown-req-id"
        ),
        pytest.param(
            "message", "aibot_respond_msg", markdown("x" * 20481), ERR_TOO_LONG, id="over-20480"
        ),
    ],
)
def test_replies_follow_the_req_id_rules(
    server: FakeLongConnServer, callback: str, cmd: str, body: dict[str, Any], errcode: int
) -> None:
    with subscribed(server) as ws:
        if callback == "message":
            req_id = server.push_message()
        elif callback == "unknown":
            req_id = "SRV_NEVER_SENT"
        else:
            req_id = server.push_event(callback)
        assert req_id is not None
        assert ask(ws, cmd, body, req_id)["errcode"] == errcode


@pytest.mark.parametrize(
    ("event", "late", "errcode"),
    [
        pytest.param("enter_chat", 4.9, 0, id="welcome-in-time"),
        pytest.param("enter_chat", 5.1, ERR_INVALID_REQ_ID, id="welcome-late"),
        pytest.param("template_card_event", 5.1, ERR_INVALID_REQ_ID, id="update-late"),
    ],
)
def test_event_replies_have_five_seconds(
    server: FakeLongConnServer, clock: Clock, event: str, late: float, errcode: int
) -> None:
    cmd, body = (
        ("aibot_respond_welcome_msg", {"msgtype": "text", "text": {"content": "hi"}})
        if event == "enter_chat"
        else ("aibot_respond_update_msg", {"response_type": "update_template_card"})
    )
    with subscribed(server) as ws:
        req_id = server.push_event(event)
        clock.now += late
        assert ask(ws, cmd, body, req_id)["errcode"] == errcode


@pytest.mark.parametrize(
    ("window_from", "steps", "errcodes"),
    [
        pytest.param("first", [0, 200, 200], [0, 0, ERR_EXPIRED_STREAM], id="from-first-frame"),
        pytest.param("last", [0, 200, 200, 200], [0, 0, 0, 0], id="since-last-frame"),
        pytest.param("last", [0, 361], [0, ERR_EXPIRED_STREAM], id="quiet-too-long"),
    ],
)
def test_the_stream_window(
    server: FakeLongConnServer,
    clock: Clock,
    window_from: Any,
    steps: list[float],
    errcodes: list[int],
) -> None:
    server.stream_window_from = window_from
    with subscribed(server) as ws:
        req_id = server.push_message()
        seen = []
        for i, step in enumerate(steps):
            clock.now += step
            seen.append(ask(ws, "aibot_respond_msg", stream("s1", f"part {i}"), req_id)["errcode"])
    assert seen == errcodes


def test_a_stream_bubble_shows_the_latest_content_until_finished(
    server: FakeLongConnServer,
) -> None:
    with subscribed(server) as ws:
        req_id = server.push_message()
        for content, finish in (("a", False), ("ab", False), ("abc", True), ("zzz", True)):
            assert (
                ask(ws, "aibot_respond_msg", stream("s1", content, finish), req_id)["errcode"] == 0
            )
    bubble = server.stream(req_id)
    assert bubble is not None and (bubble.content, bubble.finished, bubble.frames) == (
        "abc",
        True,
        3,
    )


def test_quota_per_conversation(server: FakeLongConnServer, clock: Clock) -> None:
    server.quota_per_minute = 3
    with subscribed(server) as ws:
        req_ids = [server.push_message(userid="a") for _ in range(4)]
        other = server.push_message(userid="b")
        answers = [ask(ws, "aibot_respond_msg", markdown("x"), r)["errcode"] for r in req_ids]
        assert answers == [0, 0, 0, ERR_QUOTA]
        assert ask(ws, "aibot_respond_msg", markdown("x"), other)["errcode"] == 0
        clock.now += 61
        assert ask(ws, "aibot_send_msg", {"chatid": "a", **markdown("x")})["errcode"] == 0


def test_proactive_messages_only_to_chats_that_wrote(server: FakeLongConnServer) -> None:
    with subscribed(server) as ws:
        body = {"chatid": "wrGROUP", **markdown("x")}
        assert ask(ws, "aibot_send_msg", body)["errcode"] == ERR_INVALID_CHATID
        server.push_message(chatid="wrGROUP")
        assert ask(ws, "aibot_send_msg", body)["errcode"] == 0


@pytest.mark.parametrize(
    "first_index", [pytest.param(0, id="zero-based"), pytest.param(1, id="one-based")]
)
def test_chunked_upload(server: FakeLongConnServer, first_index: int) -> None:
    data = b"0123456789" * 100
    parts = [data[:600], data[600:]]
    with subscribed(server) as ws:
        init = ask(
            ws,
            "aibot_upload_media_init",
            {
                "type": "file",
                "filename": "a.txt",
                "total_size": len(data),
                "total_chunks": 2,
                "md5": hashlib.md5(data).hexdigest(),
            },
        )
        upload_id = init["body"]["upload_id"]
        for index in (1, 0, 1):  # any order; a repeated chunk is ignored
            chunk = {
                "upload_id": upload_id,
                "chunk_index": index + first_index,
                "base64_data": base64.b64encode(parts[index]).decode(),
            }
            assert ask(ws, "aibot_upload_media_chunk", chunk)["errcode"] == 0
        done = ask(ws, "aibot_upload_media_finish", {"upload_id": upload_id})
    assert done["errcode"] == 0 and done["body"]["type"] == "file"
    assert server.uploads[done["body"]["media_id"]] == ("file", "a.txt", data)


def test_an_upload_with_a_wrong_md5_is_refused(server: FakeLongConnServer) -> None:
    with subscribed(server) as ws:
        init = ask(
            ws,
            "aibot_upload_media_init",
            {"type": "file", "filename": "a", "total_size": 1, "total_chunks": 1, "md5": "0" * 32},
        )
        upload_id = init["body"]["upload_id"]
        chunk = {"upload_id": upload_id, "chunk_index": 0, "base64_data": "eA=="}
        assert ask(ws, "aibot_upload_media_chunk", chunk)["errcode"] == 0
        assert ask(ws, "aibot_upload_media_finish", {"upload_id": upload_id})["errcode"] != 0


def test_media_urls_serve_ciphertext_for_five_minutes(
    server: FakeLongConnServer, clock: Clock
) -> None:
    url, aeskey = server.add_media(b"picture bytes", "cat.png")
    with urllib.request.urlopen(url, timeout=3) as answer:
        body = answer.read()
        assert 'filename="cat.png"' in answer.headers["Content-Disposition"]
    assert body != b"picture bytes" and decrypt_media(body, aeskey) == b"picture bytes"
    clock.now += 301
    with pytest.raises(urllib.error.HTTPError) as expired:
        urllib.request.urlopen(url, timeout=3)
    assert expired.value.code == 404
    expired.value.close()


def test_a_connection_without_pings_is_dropped(server: FakeLongConnServer) -> None:
    server.idle_timeout = 0.3
    with subscribed(server) as ws, pytest.raises(ConnectionClosed):
        ws.recv(3)


def test_callbacks_without_an_owner_are_lost(server: FakeLongConnServer) -> None:
    assert server.push_message() is None
    assert server.dropped == 1


def test_the_hourly_quota_slides(server: FakeLongConnServer, clock: Clock) -> None:
    server.quota_per_minute, server.quota_per_hour = None, 2
    with subscribed(server) as ws:
        server.push_message(userid="c")
        body = {"chatid": "c", **markdown("x")}
        answers = [ask(ws, "aibot_send_msg", body)["errcode"] for _ in range(3)]
        clock.now += 3600
        answers.append(ask(ws, "aibot_send_msg", body)["errcode"])
    assert answers == [0, 0, ERR_QUOTA, 0]
