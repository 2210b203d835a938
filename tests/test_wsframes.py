"""FrameWriter (flask_wecom.wsframes): frames sent close together leave in one write."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve

from flask_wecom.wsframes import FrameWriter


async def _echo(ws: ServerConnection) -> None:
    async for message in ws:
        await ws.send(message)


async def _writes_and_echoes(hold: float, gap: float, frames: int) -> tuple[int, list[Any]]:
    """Send ``frames`` frames in one turn, ``gap`` seconds of busy work apart; return the
    number of transport writes and what the echo server sent back."""
    async with serve(_echo, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        async with connect(f"ws://127.0.0.1:{port}") as ws:
            writer = FrameWriter(ws, hold=hold)
            writes = 0
            write = ws.transport.write

            def counted(data: Any) -> None:
                nonlocal writes
                writes += 1
                write(data)

            ws.transport.write = counted  # type: ignore[method-assign]
            for number in range(frames):
                if number:
                    time.sleep(gap)  # the rest of a burst keeps the loop busy
                writer.send(f"frame {number}")
            echoed = [await ws.recv() for _ in range(frames)]
            ws.transport.write = write  # type: ignore[method-assign]
    return writes, echoed


@pytest.mark.parametrize(
    ("hold", "gap", "writes"),
    [
        pytest.param(10.0, 0.0, 1, id="a-burst-in-one-write"),
        pytest.param(10.0, 0.002, 1, id="a-slow-burst-held-to-the-end-of-the-turn"),
        pytest.param(0.001, 0.003, 4, id="each-frame-after-the-hold-writes-the-queue"),
    ],
)
def test_frames_leave_together_unless_the_oldest_waited_hold(
    hold: float, gap: float, writes: int
) -> None:
    counted, echoed = asyncio.run(_writes_and_echoes(hold, gap, 4))
    assert counted == writes
    assert echoed == [f"frame {n}" for n in range(4)]  # in order, none lost


def test_frames_queued_on_a_closed_connection_fail_their_future() -> None:
    async def main() -> BaseException | None:
        async with serve(_echo, "127.0.0.1", 0) as server:
            port = server.sockets[0].getsockname()[1]
            async with connect(f"ws://127.0.0.1:{port}") as ws:
                writer = FrameWriter(ws, lambda: LookupError("gone"))
                await ws.close()
                future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
                writer.send("too late", future)
                await asyncio.sleep(0)
                return future.exception()

    failed = asyncio.run(main())
    assert isinstance(failed, LookupError) and str(failed) == "gone"


def test_a_lone_surrogate_fails_in_the_senders_hands() -> None:
    async def main() -> None:
        async with serve(_echo, "127.0.0.1", 0) as server:
            port = server.sockets[0].getsockname()[1]
            async with connect(f"ws://127.0.0.1:{port}") as ws:
                writer = FrameWriter(ws)
                with pytest.raises(UnicodeEncodeError):
                    writer.send("\ud800")
                writer.send("fine")
                assert await ws.recv() == "fine"  # the failed frame took nothing down

    asyncio.run(main())
