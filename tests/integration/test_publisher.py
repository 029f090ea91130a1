"""Our PUBLISH connection against real redis-servers, read by a plain redis-py subscriber:
each message is the msgpack of rooms.bus.serialization on the channel rooms.bus.names
gives."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from rooms.bus.connection import ReplyError
from rooms.bus.names import BusNames
from rooms.bus.publisher import RedisPublisher
from rooms.bus.serialization import deserialize
from tests.integration.servers import RedisServer

pytestmark = [pytest.mark.integration, pytest.mark.timeout(30)]


class Reader:
    """A redis-py subscriber to some channels of one Redis: the independent receiving end."""

    def __init__(self, url: str) -> None:
        self.client = aioredis.Redis.from_url(url)
        self.pubsub = self.client.pubsub(ignore_subscribe_messages=True)

    async def subscribe(self, *channels: str) -> None:
        await self.pubsub.subscribe(*channels)

    async def receive(self, channel: str | None = None) -> dict[str, Any]:
        async with asyncio.timeout(5):
            while True:
                raw = await self.pubsub.get_message(timeout=1)
                if raw is not None and channel in (None, raw["channel"].decode()):
                    return deserialize(raw["data"])

    async def close(self) -> None:
        await self.pubsub.aclose()
        await self.client.aclose()


@pytest.fixture
async def reader_for() -> AsyncIterator[Any]:
    readers: list[Reader] = []

    def make(url: str) -> Reader:
        readers.append(Reader(url))
        return readers[-1]

    yield make
    for reader in readers:
        await reader.close()


@pytest.fixture
def locked_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path, password="s3cret:with/odd@chars")
    yield server
    server.stop()


@pytest.fixture
async def wired(redis_server: RedisServer, reader_for: Any) -> tuple[Reader, str, RedisPublisher]:
    """A reader on a worker channel and its group `room`, and our publisher on that Redis."""
    names = BusNames(f"t{uuid.uuid4().hex[:8]}")
    channel = names.new_channel("worker.")
    reader = reader_for(redis_server.url)
    await reader.subscribe(channel, names.group("room"))
    return reader, channel, RedisPublisher([redis_server.url], names)


async def test_messages_reach_channels_and_groups_unchanged(wired: Any) -> None:
    """A message to a channel, and one to a group, arrive as sent (bytes stay bytes)."""
    reader, channel, publisher = wired
    assert await publisher.send(channel, {"type": "direct", "n": 1, "blob": b"\x00\xff"}) == 1
    assert await publisher.group_send("room", {"type": "grouped", "text": "é"}) == 1
    assert await reader.receive() == {"type": "direct", "n": 1, "blob": b"\x00\xff"}
    assert await reader.receive() == {"type": "grouped", "text": "é"}


async def test_writes_of_one_loop_turn_arrive_in_order(wired: Any) -> None:
    """500 writes started together arrive in the order they were started."""
    reader, channel, publisher = wired
    await asyncio.gather(*(publisher.send(channel, {"type": "n", "n": n}) for n in range(500)))
    assert [(await reader.receive(channel))["n"] for _ in range(500)] == list(range(500))


async def test_a_caller_that_stops_waiting_still_gets_its_message_sent(wired: Any) -> None:
    """A write is queued when called: cancelling its caller does not take it back."""
    reader, channel, publisher = wired
    await publisher.send(channel, {"type": "warm-up"})
    sending = asyncio.ensure_future(publisher.send(channel, {"type": "late"}))
    await asyncio.sleep(0)  # it runs up to waiting for Redis's reply
    sending.cancel()
    with pytest.raises(asyncio.CancelledError):
        await sending
    assert (await reader.receive(channel))["type"] == "warm-up"
    assert (await reader.receive(channel))["type"] == "late"


async def test_a_password_in_the_url_is_used_and_a_wrong_one_refused(
    locked_redis: RedisServer, reader_for: Any
) -> None:
    """AUTH with the URL's password (odd characters unquoted); a wrong one is a ReplyError."""
    names = BusNames("auth")
    channel = names.new_channel("worker.")
    reader = reader_for(locked_redis.url)
    await reader.subscribe(channel)
    await RedisPublisher([locked_redis.url], names).send(channel, {"type": "authenticated"})
    assert (await reader.receive(channel))["type"] == "authenticated"
    wrong = locked_redis.url.replace("s3cret", "wrong")
    with pytest.raises(ReplyError, match="WRONGPASS|invalid"):
        await RedisPublisher([wrong], names).send(channel, {"type": "intruder"})


async def test_after_a_redis_restart_the_next_write_reconnects(
    private_redis: RedisServer, reader_for: Any
) -> None:
    """The write that finds the old connection dead fails; the one after it is delivered
    (the node retries a failed write once)."""
    names = BusNames("restart")
    publisher = RedisPublisher([private_redis.url], names)
    await publisher.send("nobody", {"type": "before"})
    private_redis.stop()
    with pytest.raises(OSError):
        await publisher.send("nobody", {"type": "during"})
    private_redis.start()
    channel = names.new_channel("worker.")
    reader = reader_for(private_redis.url)
    await reader.subscribe(channel)
    for attempt in (1, 2):
        try:
            await publisher.send(channel, {"type": "after"})
            break
        except OSError:
            assert attempt == 1
    assert (await reader.receive(channel))["type"] == "after"


async def test_an_unreachable_server_fails_within_the_timeout(tmp_path: Path) -> None:
    """Nothing listening: the write fails with an OSError well within 2 s."""
    server = RedisServer(tmp_path)
    url = server.url
    server.stop()
    publisher = RedisPublisher([url], BusNames("gone"), timeout=0.5)
    with pytest.raises(OSError):
        await asyncio.wait_for(publisher.send("c", {"type": "x"}), 2)


async def test_send_soon_needs_an_open_connection_then_writes_without_waiting(wired: Any) -> None:
    """send_soon refuses without an open connection, and queues at once with one."""
    reader, channel, publisher = wired
    assert publisher.send_soon(channel, {"type": "too early"}) is False  # nothing sent
    await publisher.send(channel, {"type": "first"})
    assert publisher.send_soon(channel, {"type": "soon"}) is True
    assert (await reader.receive(channel))["type"] == "first"
    assert (await reader.receive(channel))["type"] == "soon"
