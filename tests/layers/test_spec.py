"""The channel layer specification (channels' docs/channel_layer_spec.rst), as the tests of
channels, channels_redis (tests/test_core.py, tests/test_pubsub.py) and channels_rabbitmq
check it, on each layer of tests/layers/conftest.py. Two layers are two processes of one
cluster (`layer`, `other`): one Redis, one prefix."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from typing import Any

import pytest
import redis
from asgiref.sync import async_to_sync
from channels.exceptions import ChannelFull

from tests.integration.servers import RedisServer
from tests.layers.conftest import CAPACITY, differs

QUIET = 0.3  # how long a channel that should get nothing is watched


async def nothing_arrives(layer: Any, channel: str) -> None:
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(QUIET):
            await layer.receive(channel)


async def receive_soon(layer: Any, channel: str, within: float = 2.0) -> dict[str, Any]:
    async with asyncio.timeout(within):
        message: dict[str, Any] = await layer.receive(channel)
        return message


async def receiving(layer: Any, channel: str) -> asyncio.Task[dict[str, Any]]:
    """A receive under way (a pub/sub layer subscribes a normal channel on its first
    receive: what is sent before that reaches nobody)."""
    task = asyncio.ensure_future(layer.receive(channel))
    await asyncio.sleep(0.1)
    return task


# ---- channels -------------------------------------------------------------------------------


async def test_a_message_sent_to_a_new_channel_is_received(layer: Any) -> None:
    channel = await layer.new_channel()
    await layer.send(channel, {"type": "test.message", "text": "Ahoy-hoy!"})
    assert await receive_soon(layer, channel) == {"type": "test.message", "text": "Ahoy-hoy!"}


async def test_messages_of_one_channel_arrive_in_the_order_sent(layer: Any, other: Any) -> None:
    channel = await layer.new_channel()
    for sender in (layer, other):
        for n in range(3):
            await sender.send(channel, {"type": f"message.{n}"})
        assert [(await receive_soon(layer, channel))["type"] for _ in range(3)] == [
            "message.0",
            "message.1",
            "message.2",
        ]


async def test_another_process_reaches_a_process_specific_channel(layer: Any, other: Any) -> None:
    channel = await layer.new_channel(prefix="test.")
    await other.send(channel, {"type": "hello", "from": "other"})
    assert await receive_soon(layer, channel) == {"type": "hello", "from": "other"}


async def test_another_process_reaches_a_normal_channel(layer: Any, other: Any) -> None:
    """A `runworker` channel: no `!`, any process may receive it."""
    task = await receiving(layer, "jobs-normal")
    await other.send("jobs-normal", {"type": "job", "n": 1})
    assert await asyncio.wait_for(task, 2) == {"type": "job", "n": 1}


async def test_a_message_of_a_normal_channel_reaches_one_reader(
    request: pytest.FixtureRequest, layer: Any, other: Any
) -> None:
    """Spec, Channels: "only a single reader should get each written message"."""
    differs(
        request,
        layer,
        "channels_redis#299: the pub/sub layer delivers to every reader",
        "pubsub",
    )
    readers = [await receiving(layer, "jobs-one"), await receiving(other, "jobs-one")]
    await layer.send("jobs-one", {"type": "job"})
    done, pending = await asyncio.wait(readers, timeout=1.0)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    assert [task.result() for task in done] == [{"type": "job"}]


async def test_a_cancelled_receive_takes_nothing_from_the_next(
    request: pytest.FixtureRequest, layer: Any
) -> None:
    """A receive cancelled by a timeout: the channel still works (channels_redis's
    test_receive_cancel)."""
    differs(
        request,
        layer,
        "RedisPubSubChannelLayer unsubscribes a channel whose receive is cancelled "
        "(channels_redis/pubsub.py, receive)",
        "pubsub",
    )
    channel = await layer.new_channel()
    waiting = asyncio.ensure_future(layer.receive(channel))
    await asyncio.sleep(0.05)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    await layer.send(channel, {"type": "after"})
    assert await receive_soon(layer, channel) == {"type": "after"}


async def test_new_channel_names_are_unique_even_with_the_random_seed_reset(
    layer: Any,
) -> None:
    random.seed(1)
    first = await layer.new_channel()
    random.seed(1)
    assert await layer.new_channel() != first


async def test_a_1mb_message_crosses_processes(layer: Any, other: Any) -> None:
    channel = await layer.new_channel()
    big = {"type": "big", "text": "x" * 1_000_000, "data": bytes(range(256)) * 1000}
    await other.send(channel, big)
    assert await receive_soon(layer, channel, within=5) == big


@pytest.mark.parametrize(
    "call",
    [
        lambda layer: layer.send("=+135!", {"type": "x"}),
        lambda layer: layer.send("a" * 100, {"type": "x"}),
        lambda layer: layer.group_add("bad group", "specific.a!b"),
        lambda layer: layer.group_send("é", {"type": "x"}),
        lambda layer: layer.receive("bad name"),
    ],
    ids=["send-charset", "send-length", "group-add", "group-send", "receive"],
)
async def test_an_invalid_name_is_refused(
    request: pytest.FixtureRequest, layer: Any, call: Callable[[Any], Any]
) -> None:
    differs(request, layer, "RedisPubSubChannelLayer does not check names", "pubsub")
    with pytest.raises(TypeError):
        async with asyncio.timeout(1):  # a layer that takes the name may wait on it
            await call(layer)


# ---- capacity and expiry ----------------------------------------------------------------------


async def test_a_send_over_capacity_raises_channel_full(
    request: pytest.FixtureRequest, layer: Any
) -> None:
    differs(request, layer, "RedisPubSubChannelLayer has no capacity", "pubsub")
    channel = await layer.new_channel()
    for n in range(CAPACITY):
        await layer.send(channel, {"type": "fill", "n": n})
    with pytest.raises(ChannelFull):
        await layer.send(channel, {"type": "one too many"})
    assert (await receive_soon(layer, channel))["n"] == 0


async def test_channel_capacity_sets_a_capacity_by_name(
    request: pytest.FixtureRequest, layer: Any
) -> None:
    """`channel_capacity={"tiny*": 1}`, on a normal channel."""
    differs(request, layer, "RedisPubSubChannelLayer has no capacity", "pubsub")
    await layer.send("tiny-jobs", {"type": "one"})
    with pytest.raises(ChannelFull):
        await layer.send("tiny-jobs", {"type": "two"})
    assert await receive_soon(layer, "tiny-jobs") == {"type": "one"}


async def test_a_group_send_over_a_members_capacity_is_dropped_silently(
    request: pytest.FixtureRequest, layer: Any, other: Any
) -> None:
    differs(request, layer, "RedisPubSubChannelLayer has no capacity", "pubsub")
    channel = await layer.new_channel()
    await layer.group_add("crowd", channel)
    for n in range(CAPACITY + 2):
        await other.group_send("crowd", {"type": "news", "n": n})
    await asyncio.sleep(0.2)
    received = [(await receive_soon(layer, channel))["n"] for _ in range(CAPACITY)]
    assert received == list(range(CAPACITY))
    await nothing_arrives(layer, channel)


async def test_a_message_not_received_within_expiry_is_dropped(
    request: pytest.FixtureRequest, make_layer: Callable[..., Any]
) -> None:
    layer = make_layer(expiry=1)
    differs(request, layer, "RedisPubSubChannelLayer has no expiry", "pubsub")
    try:
        channel = await layer.new_channel()
        await layer.send(channel, {"type": "stale"})
        await asyncio.sleep(1.2)
        await layer.send(channel, {"type": "fresh"})
        assert await receive_soon(layer, channel) == {"type": "fresh"}
    finally:
        await layer.flush()


# ---- groups -----------------------------------------------------------------------------------


async def test_group_send_reaches_the_members_and_not_the_discarded(layer: Any) -> None:
    one, two, three = [await layer.new_channel(prefix=f"gr-{n}.") for n in (1, 2, 3)]
    for channel in (one, two, three):
        await layer.group_add("test-group", channel)
    await layer.group_discard("test-group", two)
    await layer.group_send("test-group", {"type": "message.1"})
    assert await receive_soon(layer, one) == {"type": "message.1"}
    assert await receive_soon(layer, three) == {"type": "message.1"}
    await nothing_arrives(layer, two)


async def test_group_send_reaches_members_in_every_process(layer: Any, other: Any) -> None:
    here, there = await layer.new_channel(), await other.new_channel()
    await layer.group_add("everywhere", here)
    await other.group_add("everywhere", there)
    await layer.group_send("everywhere", {"type": "hello"})
    assert await receive_soon(layer, here) == {"type": "hello"}
    assert await receive_soon(other, there) == {"type": "hello"}


async def test_members_with_one_prefix_each_get_the_message(layer: Any) -> None:
    channels = [await layer.new_channel(prefix="same.") for _ in range(3)]
    for channel in channels:
        await layer.group_add("same-prefix", channel)
    await layer.group_send("same-prefix", {"type": "message.1"})
    for channel in channels:
        assert await receive_soon(layer, channel) == {"type": "message.1"}


async def test_discarding_a_channel_never_added_does_nothing(layer: Any) -> None:
    channel = await layer.new_channel()
    await layer.group_discard("never-joined", channel)
    await layer.group_send("never-joined", {"type": "x"})
    await nothing_arrives(layer, channel)


async def test_the_last_member_leaving_stops_delivery(layer: Any, other: Any) -> None:
    channel = await layer.new_channel()
    await layer.group_add("brief", channel)
    await layer.group_discard("brief", channel)
    await other.group_send("brief", {"type": "late"})
    await nothing_arrives(layer, channel)


# ---- event loops, flush, reconnect ------------------------------------------------------------


def test_async_to_sync_calls_each_run_on_a_loop_of_their_own(
    make_layer: Callable[..., Any],
) -> None:
    """Django code sends through async_to_sync, which runs each call on a new event loop;
    a layer's connections belong to one loop and must not leak past it."""
    layer, listener = make_layer(), make_layer()

    async def listen_then_collect() -> list[dict[str, Any]]:
        channel = await listener.new_channel()
        await listener.group_add("from-sync", channel)
        loop = asyncio.get_running_loop()
        for n in range(3):
            await loop.run_in_executor(None, send_from_sync_code, n)
        received = [await receive_soon(listener, channel) for _ in range(3)]
        await listener.flush()
        return received

    def send_from_sync_code(n: int) -> None:
        async_to_sync(layer.group_send)("from-sync", {"type": "sync", "n": n})

    assert async_to_sync(listen_then_collect)() == [{"type": "sync", "n": n} for n in range(3)]


async def test_a_flushed_layer_works_like_new(layer: Any) -> None:
    channel = await layer.new_channel()
    await layer.group_add("before-flush", channel)
    await layer.flush()
    channel = await layer.new_channel()
    await layer.send(channel, {"type": "after"})
    assert await receive_soon(layer, channel) == {"type": "after"}


async def test_group_messages_arrive_again_after_redis_drops_the_connections(
    layer: Any, other: Any, redis_server: RedisServer
) -> None:
    """Redis drops subscribers (output-buffer limit, restart, network): the layer
    subscribes again by itself."""
    channel = await layer.new_channel()
    await layer.group_add("survivors", channel)
    client = redis.Redis.from_url(redis_server.url)
    try:
        await asyncio.to_thread(client.client_kill_filter, _type="pubsub", skipme=True)
    finally:
        client.close()
    async with asyncio.timeout(10):
        while True:
            await other.group_send("survivors", {"type": "again"})
            try:
                async with asyncio.timeout(0.5):
                    assert await layer.receive(channel) == {"type": "again"}
                    return
            except TimeoutError:
                continue


async def test_flush_empties_the_normal_channels(layer: Any, other: Any) -> None:
    await layer.send("jobs-flushed", {"type": "before"})
    await layer.flush()
    task = await receiving(other, "jobs-flushed")
    await other.send("jobs-flushed", {"type": "after"})
    assert await asyncio.wait_for(task, 2) == {"type": "after"}
