"""AI-bot (智能机器人) stream replies: state shared by every worker, answered on each refresh.

A stream works like this (doc 100719, 流式消息刷新): the bot answers a message with a
stream id; WeCom then keeps sending ``msgtype: stream`` refresh callbacks for that id,
and each must be answered with the *whole* content so far, until ``finish`` is true or
six minutes have passed. :class:`StreamStore` keeps that state in a
:class:`~flask_wecom.stores.Store`, so a refresh that lands on another gunicorn worker,
or another host with Redis, gets the same answer:

* :meth:`StreamStore.start` opens a stream and returns its id;
* :meth:`StreamStore.run` consumes a handler's iterator of text chunks (and
  :class:`~flask_wecom.replies.StreamImage` objects, sent with the final answer),
  saving the cumulative content after each chunk;
* :meth:`StreamStore.snapshot` answers a refresh. An unknown or expired id is answered
  ``finish: true`` with empty content, so WeCom stops polling.

Content over 20480 bytes keeps its tail on a UTF-8 boundary. Stream ids are scoped per
endpoint, so a signed refresh for one bot never reads another bot's stream. The six-minute
cap holds even while a chunk is slow: each state carries its wall-clock expiry, and a
refresh after it is answered ``finish`` with what the stream has. No web imports.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterable, Callable, Iterable
from dataclasses import dataclass, field

from .errors import StoreError
from .ids import unique_id
from .replies import (
    MAX_STREAM_BYTES,
    MAX_STREAM_IMAGES,
    StreamImage,
    StreamReply,
    truncate_utf8_tail,
)
from .stores import Store

__all__ = ["MAX_STREAM_SECONDS", "StreamState", "StreamStore"]

logger = logging.getLogger("flask_wecom")

#: WeCom stops polling six minutes after the user's message.
MAX_STREAM_SECONDS = 360.0


@dataclass
class StreamState:
    """One stream: the content so far, whether it is finished, and its final images."""

    content: str = ""
    finish: bool = False
    images: list[StreamImage] = field(default_factory=list)
    #: Wall-clock seconds after which the stream counts as finished, whatever its producer does.
    expires: float = float("inf")

    def encode(self) -> bytes:
        """Serialise for the store."""
        images = [[image.base64, image.md5] for image in self.images]
        return json.dumps(
            {"c": self.content, "f": self.finish, "i": images, "e": self.expires}
        ).encode()

    @classmethod
    def decode(cls, data: bytes) -> StreamState:
        """Read back what :meth:`encode` wrote."""
        raw = json.loads(data)
        return cls(raw["c"], raw["f"], [StreamImage(b, m) for b, m in raw["i"]], raw["e"])


class StreamStore:
    """Stream states in a store, keyed by stream id.

    :param store: memory (one process) or Redis (every worker and host).
    :param scope: the endpoint the streams belong to; another scope never sees them.
    :param max_seconds: after this, a running stream is finished with what it has.
    :param clock: wall-clock seconds (shared by every host reading the stream).
    """

    def __init__(
        self,
        store: Store,
        *,
        scope: str = "",
        max_seconds: float = MAX_STREAM_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.scope = scope
        self.max_seconds = max_seconds
        self.clock = clock
        #: Streams are kept a minute past WeCom's last possible refresh.
        self.ttl = max_seconds + 60.0

    def _key(self, stream_id: str) -> str:
        return f"stream:{self.scope}:{stream_id}"

    def start(self, content: str = "") -> str:
        """Open a stream with an optional first content; return its new id."""
        stream_id = unique_id()
        self.save(stream_id, StreamState(content, expires=self.clock() + self.max_seconds))
        return stream_id

    def save(self, stream_id: str, state: StreamState) -> None:
        """Store a stream's state (its content cut to the last 20480 bytes)."""
        state.content = truncate_utf8_tail(state.content, MAX_STREAM_BYTES)
        self.store.set(self._key(stream_id), state.encode(), self.ttl)

    def snapshot(self, stream_id: str) -> StreamReply:
        """The answer to a refresh: all the content so far (finish, empty if unknown)."""
        data = self.store.get(self._key(stream_id))
        if data is None:
            return StreamReply(stream_id, "", finish=True)
        state = StreamState.decode(data)
        if not state.finish and self.clock() >= state.expires:
            state.finish = True  # the producer is stuck in a slow chunk: WeCom stops polling
        return StreamReply(
            stream_id, state.content, state.finish, state.images if state.finish else ()
        )

    def run(self, stream_id: str, chunks: Iterable[str | StreamImage]) -> None:
        """Consume a handler's chunks into the stream, then finish it.

        Text chunks are appended; images are kept for the final answer (at most
        10). A handler error finishes the stream with what it has, and is logged.
        """
        writer = _Writer(self, stream_id)
        try:
            for chunk in chunks:
                if not writer.add(chunk):
                    break
        except Exception:
            logger.exception("stream %s failed; finishing it with what it has", stream_id)
        writer.finish()

    async def run_async(self, stream_id: str, chunks: AsyncIterable[str | StreamImage]) -> None:
        """:meth:`run` for an async generator (an ``async def`` handler that yields)."""
        writer = _Writer(self, stream_id)
        try:
            async for chunk in chunks:
                if not writer.add(chunk):
                    break
        except Exception:
            logger.exception("stream %s failed; finishing it with what it has", stream_id)
        writer.finish()


class _Writer:
    """The state of one running stream, saved after each chunk."""

    def __init__(self, streams: StreamStore, stream_id: str) -> None:
        self.streams, self.stream_id = streams, stream_id
        self.state = StreamState(expires=streams.clock() + streams.max_seconds)

    def add(self, chunk: str | StreamImage) -> bool:
        """Take one chunk; False once the stream ran out of time."""
        state = self.state
        if isinstance(chunk, StreamImage):
            if len(state.images) < MAX_STREAM_IMAGES:
                state.images.append(chunk)
            return True
        state.content = truncate_utf8_tail(state.content + chunk, MAX_STREAM_BYTES)
        if self.streams.clock() >= state.expires:
            logger.warning(
                "stream %s ran past %.0f s; finishing it", self.stream_id, self.streams.max_seconds
            )
            return False
        self.streams.save(self.stream_id, state)
        return True

    def finish(self) -> None:
        """Save the final state (``finish: true``)."""
        self.state.finish = True
        try:
            self.streams.save(self.stream_id, self.state)
        except StoreError:
            logger.exception("stream %s could not be finished in the store", self.stream_id)
