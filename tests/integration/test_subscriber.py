"""Our subscribe connections against real redis-servers, written to by our publisher and
by plain redis-py clients, on the names of rooms.bus.names."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from rooms.bus.connection import ReplyError
from rooms.bus.names import BusNames, shard_index
from rooms.bus.publisher import RedisPublisher
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
    """(subscriber, its inbox, a publisher of the same names): closed after."""
    made: list[RedisSubscriber] = []

    def make(*urls: str, timeout: float = 1.0) -> tuple[RedisSubscriber, Inbox, RedisPublisher]:
        names = BusNames(f"t{uuid.uuid4().hex[:8]}")
        subscriber = RedisSubscriber(list(urls), names, timeout=timeout)
        inbox = Inbox()
        subscriber.listen(inbox)
        made.append(subscriber)
        return subscriber, inbox, RedisPublisher(list(urls), names)

    yield make
    for subscriber in made:
        await subscriber.close()


async def subscribers(url: str, name: str) -> int:
    client = aioredis.Redis.from_url(url)
    try:
        return int(dict(await client.pubsub_numsub(name)).get(name.encode(), 0))
    finally:
        await client.aclose()


async def test_messages_reach_our_channel_and_groups_unchanged(
    redis_server: RedisServer, subscriber_for: Any
) -> None:
    """A worker channel and a group on the names of rooms.bus.names: what is published to
    them (by our publisher, or any client publishing msgpack) arrives as sent."""
    subscriber, inbox, publisher = subscriber_for(redis_server.url)
    channel = await subscriber.new_channel("worker.")
    await subscriber.group_add("room")
    assert channel.startswith(f"{publisher.names.prefix}:c:worker.")
    await publisher.send(channel, {"type": "direct", "blob": b"\x00\xff"})
    await publisher.group_send("room", {"type": "grouped", "text": "é"})
    client = aioredis.Redis.from_url(redis_server.url)
    try:
        await client.publish(publisher.names.group("room"), b"\x81\xa4type\xa6plain!")
    finally:
        await client.aclose()
    assert await inbox.next() == {"type": "direct", "blob": b"\x00\xff"}
    assert await inbox.next() == {"type": "grouped", "text": "é"}
    assert await inbox.next() == {"type": "plain!"}


async def test_a_subscription_holds_when_the_call_returns_and_ends_on_discard(
    redis_server: RedisServer, subscriber_for: Any
) -> None:
    subscriber, inbox, publisher = subscriber_for(redis_server.url)
    """group_add returns once Redis counts the subscription; group_discard once it is gone."""
    await subscriber.new_channel("worker.")
    group_channel = publisher.names.group("room")
    await subscriber.group_add("room")
    assert await subscribers(redis_server.url, group_channel) == 1
    await subscriber.group_discard("room")
    assert await subscribers(redis_server.url, group_channel) == 0
    await publisher.group_send("room", {"type": "after discard"})
    await subscriber.group_add("other")
    await publisher.group_send("other", {"type": "marker"})
    assert await inbox.next() == {"type": "marker"}  # nothing from the discarded group


async def test_thousands_of_groups_are_left_in_a_few_commands_and_the_replies_stay_in_step(
    redis_server: RedisServer, subscriber_for: Any
) -> None:
    """2,500 groups discarded in one call (three UNSUBSCRIBEs, each confirmed name by
    name): none is left subscribed, and the connection's later commands get their own
    replies (a SUBSCRIBE after them holds, a message to it arrives)."""
    subscriber, inbox, publisher = subscriber_for(redis_server.url)
    await subscriber.new_channel("worker.")
    groups = [f"many-{n}" for n in range(2500)]
    await asyncio.gather(*(subscriber.group_add(group) for group in groups))
    await subscriber.group_discard(*groups)
    names = [publisher.names.group(group) for group in groups]
    client = aioredis.Redis.from_url(redis_server.url)
    counts = await client.pubsub_numsub(*names)
    await client.aclose()
    assert [n for _, n in counts if n] == []
    await subscriber.group_add("after")
    assert await subscribers(redis_server.url, publisher.names.group("after")) == 1
    sent = await publisher.group_send_many([("after", {"type": "n", "n": n}) for n in range(3)])
    assert sent == [True, True, True]
    assert [(await inbox.next())["n"] for _ in range(3)] == [0, 1, 2]


async def test_messages_arrive_in_order_under_a_burst(
    redis_server: RedisServer, subscriber_for: Any
) -> None:
    subscriber, inbox, publisher = subscriber_for(redis_server.url)
    """500 messages published together arrive in order."""
    channel = await subscriber.new_channel("worker.")
    await asyncio.gather(*(publisher.send(channel, {"type": "n", "n": n}) for n in range(500)))
    assert [(await inbox.next())["n"] for _ in range(500)] == list(range(500))


async def test_after_a_redis_restart_every_subscription_comes_back(
    private_redis: RedisServer, subscriber_for: Any
) -> None:
    subscriber, inbox, publisher = subscriber_for(private_redis.url)
    """Redis stopped and started empty: the worker channel and the group are subscribed
    again, and a message to the group arrives."""
    channel = await subscriber.new_channel("worker.")
    await subscriber.group_add("room")
    private_redis.stop()
    await asyncio.sleep(0.3)  # a few reconnect attempts fail meanwhile
    private_redis.start()
    group_channel = publisher.names.group("room")
    for _ in range(50):
        if await subscribers(private_redis.url, group_channel) == 1:
            break
        await asyncio.sleep(0.1)
    assert await subscribers(private_redis.url, channel) == 1
    await publisher.group_send("room", {"type": "back"})
    assert await inbox.next() == {"type": "back"}


async def test_a_password_in_the_url_is_used_and_a_wrong_one_refused(
    tmp_path: Path, subscriber_for: Any
) -> None:
    """AUTH with the URL's password; a wrong one fails the subscription with a ReplyError."""
    server = RedisServer(tmp_path, password="s3cret:with/odd@chars")
    try:
        subscriber, inbox, publisher = subscriber_for(server.url)
        channel = await subscriber.new_channel("worker.")
        await publisher.send(channel, {"type": "authenticated"})
        assert await inbox.next() == {"type": "authenticated"}
        intruder, _, _ = subscriber_for(server.url.replace("s3cret", "wrong"))
        with pytest.raises(ReplyError, match="WRONGPASS|invalid"):
            await intruder.new_channel("worker.")
    finally:
        server.stop()


async def test_an_unreachable_server_fails_within_the_timeout(
    tmp_path: Path, subscriber_for: Any
) -> None:
    """Nothing listening: subscribing fails with an OSError well within 2 s."""
    server = RedisServer(tmp_path)
    server.stop()
    subscriber, _, _ = subscriber_for(server.url, timeout=0.5)
    with pytest.raises(OSError):
        await asyncio.wait_for(subscriber.new_channel("worker."), 2)


async def test_a_message_that_is_not_ours_is_skipped_with_a_warning(
    redis_server: RedisServer, subscriber_for: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Bytes that are not a msgpack map (someone else publishing on our name) are logged
    and skipped; the next message arrives on the same subscription."""
    subscriber, inbox, publisher = subscriber_for(redis_server.url)
    channel = await subscriber.new_channel("worker.")
    client = aioredis.Redis.from_url(redis_server.url)
    try:
        with caplog.at_level(logging.WARNING, logger="rooms.bus.subscriber"):
            await client.publish(channel, b"\xc1 not msgpack")
            await publisher.send(channel, {"type": "next"})
            assert await inbox.next() == {"type": "next"}
    finally:
        await client.aclose()
    assert "undecodable message" in caplog.text


async def test_a_message_its_owner_cannot_handle_costs_nothing_but_a_log_line(
    redis_server: RedisServer, subscriber_for: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """An exception in the owner's handler is logged; the subscription goes on."""
    subscriber, inbox, publisher = subscriber_for(redis_server.url)

    def picky(message: dict[str, Any]) -> None:
        inbox(message)
        if message["type"] == "bad":
            raise KeyError("origin")

    subscriber.listen(picky)
    channel = await subscriber.new_channel("worker.")
    with caplog.at_level(logging.ERROR, logger="rooms.bus.subscriber"):
        await publisher.send(channel, {"type": "bad"})
        await publisher.send(channel, {"type": "good"})
        assert [(await inbox.next())["type"] for _ in range(2)] == ["bad", "good"]
    assert await subscribers(redis_server.url, channel) == 1  # the same subscription
    assert "handling a message" in caplog.text


async def test_each_name_is_subscribed_on_its_shard(tmp_path: Path, subscriber_for: Any) -> None:
    """Two Redis servers: each group is subscribed on server shard_index(name, 2) only, the
    groups land on both, and the publisher reaches every one of them."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    servers = [RedisServer(tmp_path / "a"), RedisServer(tmp_path / "b")]
    try:
        urls = [server.url for server in servers]
        subscriber, inbox, publisher = subscriber_for(*urls)
        groups = [f"room-{n}" for n in range(12)]
        for group in groups:
            await subscriber.group_add(group)
        homes = set()
        for group in groups:
            name = publisher.names.group(group)
            home = shard_index(name, 2)
            homes.add(home)
            assert [await subscribers(url, name) for url in urls] == [home == 0, home == 1]
        assert homes == {0, 1}, "the test needs groups on both servers"
        for group in groups:
            await publisher.group_send(group, {"type": "to", "group": group})
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
    """A connection that answers nothing (a cut without a reset) is found by its PING
    going unanswered, replaced, and both the group and the worker channel come back."""
    proxy = SilencingProxy(redis_server.port)
    url = await proxy.start()
    names = BusNames(f"t{uuid.uuid4().hex[:8]}")
    publisher = RedisPublisher([redis_server.url], names)
    subscriber = RedisSubscriber([url], names, timeout=1.0, health_interval=0.2)
    inbox = Inbox()
    subscriber.listen(inbox)
    try:
        channel = await subscriber.new_channel("worker.")
        await subscriber.group_add("room")
        proxy.silence()
        with caplog.at_level(logging.WARNING, logger="rooms.bus.subscriber"):
            for attempt in range(50):  # a PING goes unanswered, a new connection subscribes
                await publisher.group_send("room", {"type": "back", "attempt": attempt})
                await publisher.send(channel, {"type": "direct", "attempt": attempt})
                try:
                    first = await asyncio.wait_for(inbox.messages.get(), 0.2)
                    break
                except TimeoutError:
                    continue
            else:
                pytest.fail("nothing arrived after the connection went silent")
        assert first["type"] in ("back", "direct")
        assert "did not answer a PING" in caplog.text
        await publisher.group_send("room", {"type": "group", "final": True})
        await publisher.send(channel, {"type": "channel", "final": True})
        finals = set()
        while len(finals) < 2:  # both the group and the worker's channel came back
            message = await inbox.next()
            if message.get("final"):
                finals.add(message["type"])
        assert finals == {"group", "channel"}
    finally:
        await subscriber.close()
        await proxy.stop()
