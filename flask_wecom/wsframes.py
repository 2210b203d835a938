"""Text frames sent close together, written to a WebSocket at once.

:class:`FrameWriter` queues the frames given to :meth:`~FrameWriter.send` and writes them in
one ``transport.write`` (framed by websockets' sans-I/O protocol, ``connection.protocol``):
one TLS record and one ``send`` for a burst of replies or acks instead of one each. The
queue is written at the end of the loop's turn, or sooner, when a frame is sent while the
oldest queued one has waited ``hold`` seconds: the peer gets work while this side is still
busy with the rest of a burst, so the two ends keep working side by side instead of in turn
(measured in ``bench/longconn_bench.py``: writing only at the end of the turn halved the
throughput).

Flow control: the writer does not wait for the transport's buffer to drain. Its callers wait
for an answer to every frame they send (an ack), so what is buffered stays bounded by what
is in flight.

Shared by the long connection (the client) and the fake server of the test kit; needs
``websockets``, like both.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from websockets.asyncio.connection import Connection
from websockets.protocol import State

__all__ = ["FrameWriter"]


class FrameWriter:
    """Writes text frames sent close together in one write (see the module docstring).

    :param connection: an open client or server connection of ``websockets.asyncio``.
    :param closed: the error a frame's future gets when the connection closed before the
        frame could leave.
    :param hold: seconds the oldest queued frame may wait for others (within one turn).
    """

    def __init__(
        self,
        connection: Connection,
        closed: Callable[[], BaseException] = ConnectionError,
        *,
        hold: float = 0.0005,
    ) -> None:
        self.connection, self.closed, self.hold = connection, closed, hold
        self._queued: list[tuple[bytes, asyncio.Future[Any] | None]] = []
        self._since = 0.0  # when the oldest queued frame was sent

    def send(self, text: str, future: asyncio.Future[Any] | None = None) -> None:
        """Queue ``text`` (from the connection's loop); it leaves by the end of this turn.
        ``future``, if given, gets the ``closed`` error should the frame never leave.

        :raises UnicodeEncodeError: ``text`` holds a lone surrogate (nothing is queued).
        """
        data = text.encode()
        loop = asyncio.get_running_loop()
        if not self._queued:
            loop.call_soon(self._flush)  # at the end of this turn
            self._since = loop.time()
        elif loop.time() - self._since > self.hold:
            self._flush()  # the oldest has waited long enough: write what is here now
            self._since = loop.time()  # the flush already scheduled writes this one
        self._queued.append((data, future))

    def _flush(self) -> None:
        frames, self._queued = self._queued, []
        protocol = self.connection.protocol
        if protocol.state is not State.OPEN:
            for _, future in frames:
                if future is not None and not future.done():
                    future.set_exception(self.closed())
            return
        for data, _ in frames:
            protocol.send_text(data)
        self.connection.transport.write(b"".join(protocol.data_to_send()))
