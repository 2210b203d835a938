"""Text frames sent during one turn of the event loop, written to a WebSocket at once.

:class:`FrameWriter` queues the frames given to :meth:`~FrameWriter.send` and writes them at
the end of the loop's turn in one ``transport.write``: one TLS record and one ``send`` for a
burst of replies or acks instead of one each, framed by websockets' sans-I/O protocol
(``connection.protocol``). No frame waits longer than the turn it was sent in.

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
    """Writes the text frames of one turn of the loop together (see the module docstring).

    :param connection: an open client or server connection of ``websockets.asyncio``.
    :param closed: the error a frame's future gets when the connection closed before the
        frame could leave.
    """

    def __init__(
        self, connection: Connection, closed: Callable[[], BaseException] = ConnectionError
    ) -> None:
        self.connection, self.closed = connection, closed
        self._queued: list[tuple[bytes, asyncio.Future[Any] | None]] = []

    def send(self, text: str, future: asyncio.Future[Any] | None = None) -> None:
        """Queue ``text`` for this turn's write (from the connection's loop); ``future``, if
        given, gets the ``closed`` error should the frame never leave.

        :raises UnicodeEncodeError: ``text`` holds a lone surrogate (nothing is queued).
        """
        data = text.encode()
        if not self._queued:
            asyncio.get_running_loop().call_soon(self._flush)
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
