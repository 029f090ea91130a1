"""Our subscribe connections against real redis-servers, written to by channels_redis's own
layer and by our publisher."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from channels_redis.pubsub import RedisPubSubChannelLayer
from channels_redis.utils import _consistent_hash

from rooms.bus.publisher import RedisPublisher
from rooms.bus.resp import ReplyError
from rooms.bus.subscriber import RedisSubscriber
from tests.integration.servers import RedisServer

pytestmark = [pytest.mark.integration, pytest.mark.timeout(30)]


class Inbox:
    """What a subscriber handed over, and a way to wait for the next of it."""

    def __init__(self) -> None:
        self.messages: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    def __call__(self, message: dict[str, Any]) -> None:
        self.messages.put_nowait(message)

    async def next(self) -> dict[str, Any]:
        return await asyncio.wait_for(self.messages.get(), 5)


@pytest.fixture
async def subscriber_for() -> AsyncIterator[Callable[..., tuple[RedisSubscriber, Inbox, Any]]]:
    """(subscriber, its inbox, the channels_redis layer of the same prefix): closed after."""
    made: list[tuple[RedisSubscriber, RedisPubSubChannelLayer]] = []

    def make(*urls: str, timeout: float = 1.0) -> tuple[RedisSubscriber, Inbox, Any]:
        layer = RedisPubSubChannelLayer(hosts=list(urls), prefix=f"t{uuid.uuid4().hex[:8]}:")
        subscriber = RedisSubscriber(layer, list(urls), timeout=timeout)
        inbox = Inbox()
        subscriber.listen(inbox)
        made.append((subscriber, layer))
        return subscriber, inbox, layer

    yield make
    for subscriber, layer in made:
        await subscriber.close()
        await layer.flush()


async def subscribers(url: str, name: str) -> int:
    client = aioredis.Redis.from_url(url)
    try:
        return int(dict(await client.pubsub_numsub(name)).get(name.encode(), 0))
    finally:
        await client.aclose()


async def test_the_layers_messages_reach_our_channel_and_groups_unchanged(
    redis_server: RedisServer, subscriber_for: Any
) -> None:
    subscriber, inbox, layer = subscriber_for(redis_server.url)
    channel = await subscriber.new_channel("worker.")
    await subscriber.group_add("room")
    await layer.send(channel, {"type": "direct", "blob": b"\x00\xff"})
    await layer.group_send("room", {"type": "grouped", "text": "é"})
    await RedisPublisher(layer, [redis_server.url]).group_send("room", {"type": "ours"})
    assert await inbox.next() == {"type": "direct", "blob": b"\x00\xff"}
    assert await inbox.next() == {"type": "grouped", "text": "é"}
    assert await inbox.next() == {"type": "ours"}


async def test_a_subscription_holds_when_the_call_returns_and_ends_on_discard(
    redis_server: RedisServer, subscriber_for: Any
) -> None:
    subscriber, inbox, layer = subscriber_for(redis_server.url)
    await subscriber.new_channel("worker.")
    group_channel = layer._get_layer()._get_group_channel_name("room")
    await subscriber.group_add("room")
    assert await subscribers(redis_server.url, group_channel) == 1
    await subscriber.group_discard("room")
    assert await subscribers(redis_server.url, group_channel) == 0
    await layer.group_send("room", {"type": "after discard"})
    await subscriber.group_add("other")
    await layer.group_send("other", {"type": "marker"})
    assert await inbox.next() == {"type": "marker"}  # nothing from the discarded group


async def test_messages_arrive_in_order_under_a_burst(
    redis_server: RedisServer, subscriber_for: Any
) -> None:
    subscriber, inbox, layer = subscriber_for(redis_server.url)
    channel = await subscriber.new_channel("worker.")
    publisher = RedisPublisher(layer, [redis_server.url])
    await asyncio.gather(*(publisher.send(channel, {"type": "n", "n": n}) for n in range(500)))
    assert [(await inbox.next())["n"] for _ in range(500)] == list(range(500))


async def test_after_a_redis_restart_every_subscription_comes_back(
    private_redis: RedisServer, subscriber_for: Any
) -> None:
    subscriber, inbox, layer = subscriber_for(private_redis.url)
    channel = await subscriber.new_channel("worker.")
    await subscriber.group_add("room")
    private_redis.stop()
    await asyncio.sleep(0.3)  # a few reconnect attempts fail meanwhile
    private_redis.start()
    group_channel = layer._get_layer()._get_group_channel_name("room")
    for _ in range(50):
        if await subscribers(private_redis.url, group_channel) == 1:
            break
        await asyncio.sleep(0.1)
    assert await subscribers(private_redis.url, channel) == 1
    await layer.group_send("room", {"type": "back"})
    assert await inbox.next() == {"type": "back"}


async def test_a_password_in_the_url_is_used_and_a_wrong_one_refused(
    tmp_path: Path, subscriber_for: Any
) -> None:
    server = RedisServer(tmp_path, password="s3cret:with/odd@chars")
    try:
        subscriber, inbox, layer = subscriber_for(server.url)
        channel = await subscriber.new_channel("worker.")
        await layer.send(channel, {"type": "authenticated"})
        assert await inbox.next() == {"type": "authenticated"}
        intruder, _, _ = subscriber_for(server.url.replace("s3cret", "wrong"))
        with pytest.raises(ReplyError, match="WRONGPASS|invalid"):
            await intruder.new_channel("worker.")
    finally:
        server.stop()


async def test_an_unreachable_server_fails_within_the_timeout(
    tmp_path: Path, subscriber_for: Any
) -> None:
    server = RedisServer(tmp_path)
    server.stop()
    subscriber, _, _ = subscriber_for(server.url, timeout=0.5)
    with pytest.raises(OSError):
        await asyncio.wait_for(subscriber.new_channel("worker."), 2)


async def test_a_message_that_is_not_the_layers_is_skipped_with_a_warning(
    redis_server: RedisServer, subscriber_for: Any, caplog: pytest.LogCaptureFixture
) -> None:
    subscriber, inbox, layer = subscriber_for(redis_server.url)
    channel = await subscriber.new_channel("worker.")
    client = aioredis.Redis.from_url(redis_server.url)
    try:
        with caplog.at_level(logging.WARNING, logger="rooms.bus.subscriber"):
            await client.publish(channel, b"\xc1 not msgpack")
            await layer.send(channel, {"type": "next"})
            assert await inbox.next() == {"type": "next"}
    finally:
        await client.aclose()
    assert "undecodable message" in caplog.text


async def test_a_message_its_owner_cannot_handle_costs_nothing_but_a_log_line(
    redis_server: RedisServer, subscriber_for: Any, caplog: pytest.LogCaptureFixture
) -> None:
    subscriber, inbox, layer = subscriber_for(redis_server.url)

    def picky(message: dict[str, Any]) -> None:
        inbox(message)
        if message["type"] == "bad":
            raise KeyError("origin")

    subscriber.listen(picky)
    channel = await subscriber.new_channel("worker.")
    with caplog.at_level(logging.ERROR, logger="rooms.bus.subscriber"):
        await layer.send(channel, {"type": "bad"})
        await layer.send(channel, {"type": "good"})
        assert [(await inbox.next())["type"] for _ in range(2)] == ["bad", "good"]
    assert await subscribers(redis_server.url, channel) == 1  # the same subscription
    assert "handling a message" in caplog.text


async def test_each_name_is_subscribed_on_the_server_channels_redis_picks(
    tmp_path: Path, subscriber_for: Any
) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    servers = [RedisServer(tmp_path / "a"), RedisServer(tmp_path / "b")]
    try:
        urls = [server.url for server in servers]
        subscriber, inbox, layer = subscriber_for(*urls)
        groups = [f"room-{n}" for n in range(12)]
        for group in groups:
            await subscriber.group_add(group)
        homes = set()
        for group in groups:
            name = layer._get_layer()._get_group_channel_name(group)
            home = _consistent_hash(name, 2)
            homes.add(home)
            assert [await subscribers(url, name) for url in urls] == [home == 0, home == 1]
        assert homes == {0, 1}, "the test needs groups on both servers"
        for group in groups:
            await layer.group_send(group, {"type": "to", "group": group})
        received = {(await inbox.next())["group"] for _ in groups}
        assert received == set(groups)
    finally:
        for server in servers:
            server.stop()


class SilencingProxy:
    """A TCP proxy to Redis that can go silent on the connections it carries, as a network
    cut without a reset does: nothing passes, nothing is closed. New connections pass."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.silenced: list[asyncio.StreamWriter] = []
        self.carried: list[asyncio.StreamWriter] = []
        self.server: asyncio.Server | None = None

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._carry, "127.0.0.1", 0)
        return f"redis://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/0"

    def silence(self) -> None:
        self.silenced.extend(self.carried)

    async def stop(self) -> None:
        for writer in self.carried:
            writer.close()
        if self.server is not None:
            self.server.close()

    async def _carry(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream = await asyncio.open_connection("127.0.0.1", self.port)
        self.carried += [writer, upstream]
        await asyncio.gather(
            self._pump(reader, upstream, writer), self._pump(upstream_reader, writer, upstream)
        )

    async def _pump(
        self, reader: asyncio.StreamReader, to: asyncio.StreamWriter, mine: asyncio.StreamWriter
    ) -> None:
        while data := await reader.read(65536):
            if mine not in self.silenced and to not in self.silenced:
                to.write(data)


async def test_a_connection_gone_silent_is_replaced_and_resubscribed(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    proxy = SilencingProxy(redis_server.port)
    url = await proxy.start()
    layer = RedisPubSubChannelLayer(hosts=[redis_server.url], prefix=f"t{uuid.uuid4().hex[:8]}:")
    subscriber = RedisSubscriber(layer, [url], timeout=0.3, health_interval=0.2)
    inbox = Inbox()
    subscriber.listen(inbox)
    try:
        channel = await subscriber.new_channel("worker.")
        await subscriber.group_add("room")
        proxy.silence()
        with caplog.at_level(logging.WARNING, logger="rooms.bus.subscriber"):
            for attempt in range(30):  # a PING goes unanswered, a new connection subscribes
                await layer.group_send("room", {"type": "back", "attempt": attempt})
                await layer.send(channel, {"type": "direct", "attempt": attempt})
                try:
                    first = await asyncio.wait_for(inbox.messages.get(), 0.2)
                    break
                except TimeoutError:
                    continue
            else:
                pytest.fail("nothing arrived after the connection went silent")
        assert first["type"] in ("back", "direct")
        assert "did not answer a PING" in caplog.text
        await layer.group_send("room", {"type": "group", "final": True})
        await layer.send(channel, {"type": "channel", "final": True})
        finals = set()
        while len(finals) < 2:  # both the group and the worker's channel came back
            message = await inbox.next()
            if message.get("final"):
                finals.add(message["type"])
        assert finals == {"group", "channel"}
    finally:
        await subscriber.close()
        await layer.flush()
        await proxy.stop()
