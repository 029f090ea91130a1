"""Our PUBLISH connection against real redis-servers, read by channels_redis's own layer."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from channels_redis.pubsub import RedisPubSubChannelLayer

from rooms.bus.publisher import RedisPublisher
from rooms.bus.resp import ReplyError
from tests.integration.servers import RedisServer

pytestmark = [pytest.mark.integration, pytest.mark.timeout(30)]


@pytest.fixture
def locked_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path, password="s3cret:with/odd@chars")
    yield server
    server.stop()


@pytest.fixture
async def layer_for(request: pytest.FixtureRequest) -> AsyncIterator[Any]:
    """channels_redis pub/sub layers (the receiving side), flushed after the test."""
    layers: list[RedisPubSubChannelLayer] = []

    def make(url: str) -> RedisPubSubChannelLayer:
        layer = RedisPubSubChannelLayer(hosts=[url], prefix=f"t{uuid.uuid4().hex[:8]}")
        layers.append(layer)
        return layer

    yield make
    for layer in layers:
        await layer.flush()


@pytest.fixture
async def wired(
    redis_server: RedisServer, layer_for: Any
) -> tuple[RedisPubSubChannelLayer, str, RedisPublisher]:
    """A layer with one subscribed channel, and our publisher on the same Redis."""
    layer = layer_for(redis_server.url)
    channel = await layer.new_channel("worker.")
    return layer, channel, RedisPublisher(layer, [redis_server.url])


async def test_messages_reach_the_layers_channels_and_groups_unchanged(wired: Any) -> None:
    layer, channel, publisher = wired
    await layer.group_add("room", channel)
    await publisher.send(channel, {"type": "direct", "n": 1, "blob": b"\x00\xff"})
    await publisher.group_send("room", {"type": "grouped", "text": "é"})
    assert await layer.receive(channel) == {"type": "direct", "n": 1, "blob": b"\x00\xff"}
    assert await layer.receive(channel) == {"type": "grouped", "text": "é"}


async def test_writes_of_one_loop_turn_arrive_in_order(wired: Any) -> None:
    layer, channel, publisher = wired
    await asyncio.gather(*(publisher.send(channel, {"type": "n", "n": n}) for n in range(500)))
    assert [(await layer.receive(channel))["n"] for _ in range(500)] == list(range(500))


async def test_a_caller_that_stops_waiting_still_gets_its_message_sent(wired: Any) -> None:
    layer, channel, publisher = wired
    await publisher.send(channel, {"type": "warm-up"})
    sending = asyncio.ensure_future(publisher.send(channel, {"type": "late"}))
    await asyncio.sleep(0)  # it runs up to waiting for Redis's reply
    sending.cancel()
    with pytest.raises(asyncio.CancelledError):
        await sending
    assert (await layer.receive(channel))["type"] == "warm-up"
    assert (await layer.receive(channel))["type"] == "late"


async def test_a_password_in_the_url_is_used_and_a_wrong_one_refused(
    locked_redis: RedisServer, layer_for: Any
) -> None:
    layer = layer_for(locked_redis.url)
    channel = await layer.new_channel("worker.")
    await RedisPublisher(layer, [locked_redis.url]).send(channel, {"type": "authenticated"})
    assert (await layer.receive(channel))["type"] == "authenticated"
    wrong = locked_redis.url.replace("s3cret", "wrong")
    with pytest.raises(ReplyError, match="WRONGPASS|invalid"):
        await RedisPublisher(layer, [wrong]).send(channel, {"type": "intruder"})


async def test_after_a_redis_restart_the_next_write_reconnects(
    private_redis: RedisServer, layer_for: Any
) -> None:
    """The write that finds the old connection dead fails; the one after it is delivered
    (the node retries a failed write once)."""
    publisher = RedisPublisher(layer_for(private_redis.url), [private_redis.url])
    await publisher.send("nobody", {"type": "before"})
    private_redis.stop()
    with pytest.raises(OSError):
        await publisher.send("nobody", {"type": "during"})
    private_redis.start()
    layer = layer_for(private_redis.url)
    channel = await layer.new_channel("worker.")
    for attempt in (1, 2):
        try:
            await publisher.send(channel, {"type": "after"})
            break
        except OSError:
            assert attempt == 1
    assert (await layer.receive(channel))["type"] == "after"


async def test_an_unreachable_server_fails_within_the_timeout(
    tmp_path: Path, layer_for: Any
) -> None:
    server = RedisServer(tmp_path)
    url = server.url
    server.stop()
    publisher = RedisPublisher(layer_for(url), [url], timeout=0.5)
    with pytest.raises(OSError):
        await asyncio.wait_for(publisher.send("c", {"type": "x"}), 2)


async def test_send_soon_needs_an_open_connection_then_writes_without_waiting(wired: Any) -> None:
    layer, channel, publisher = wired
    assert publisher.send_soon(channel, {"type": "too early"}) is False  # nothing sent
    await publisher.send(channel, {"type": "first"})
    assert publisher.send_soon(channel, {"type": "soon"}) is True
    assert (await layer.receive(channel))["type"] == "first"
    assert (await layer.receive(channel))["type"] == "soon"
