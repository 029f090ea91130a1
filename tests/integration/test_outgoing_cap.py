"""A Redis that stops reading makes the publisher fail clearly, not grow without bound.

The server is SIGSTOPped: its socket stays open and accepts nothing more once the kernel's
buffers are full, as a hung Redis or a silent network does.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time

import pytest

from rooms.bus.connection import RedisNotReading
from rooms.bus.names import BusNames
from rooms.bus.publisher import RedisPublisher
from rooms.bus.subscriber import RedisSubscriber
from tests.integration.servers import RedisServer

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

CAP = 2 * 1024 * 1024
MESSAGE = {"type": "big", "pad": b"x" * (256 * 1024)}


async def test_a_stopped_redis_gives_a_clear_error_and_a_bounded_buffer(
    private_redis: RedisServer,
) -> None:
    """Publishing 256 KiB messages to a SIGSTOPped Redis: within 10 s a write fails with
    RedisNotReading (saying how much is queued), what is queued never passes the cap plus
    one message, and after SIGCONT the next write is delivered on a fresh connection."""
    assert private_redis.process is not None
    names = BusNames("cap")
    publisher = RedisPublisher([private_redis.url], names, max_outgoing=CAP)
    await publisher.send("warm-up", {"type": "warm-up"})  # the connection is open
    os.kill(private_redis.process.pid, signal.SIGSTOP)
    pending: list[asyncio.Future[int]] = []
    error: BaseException | None = None
    peak = 0
    started = time.monotonic()
    try:
        while error is None:
            assert time.monotonic() - started < 10, f"no error after {len(pending)} writes"
            pending.append(asyncio.ensure_future(publisher.send("nobody", MESSAGE)))
            await asyncio.sleep(0.001)
            peak = max(peak, publisher.queued_bytes())
            error = next((f.exception() for f in pending if f.done() and f.exception()), None)
        elapsed = time.monotonic() - started
        assert isinstance(error, RedisNotReading), repr(error)
        assert "is not reading" in str(error) and "bytes are queued" in str(error)
        assert peak <= CAP + 256 * 1024 + 100
        print(f"error after {elapsed:.2f} s, {len(pending)} writes, peak queued {peak} bytes")
        await asyncio.sleep(0.05)
        assert publisher.queued_bytes() == 0  # the connection is gone, its buffer with it
    finally:
        os.kill(private_redis.process.pid, signal.SIGCONT)
    for future in pending:
        future.cancel()

    subscriber = RedisSubscriber([private_redis.url], names)
    inbox: asyncio.Queue[dict[str, object]] = asyncio.Queue()
    subscriber.listen(inbox.put_nowait)
    try:
        channel = await subscriber.new_channel("worker.")
        for attempt in (1, 2):  # a write may still meet a connection opened while stopped
            try:
                assert await publisher.send(channel, {"type": "after"}) == 1
                break
            except ConnectionError:
                assert attempt == 1
        assert await asyncio.wait_for(inbox.get(), 5) == {"type": "after"}
    finally:
        await subscriber.close()
