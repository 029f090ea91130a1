"""A lost subscription is always re-established, however often the connection drops.

Redis closes a subscriber's connection when it passes `client-output-buffer-limit pubsub`
(https://redis.io/docs/latest/develop/reference/clients/#output-buffer-limits), and may do
so again while the worker is resubscribing. `CLIENT KILL TYPE pubsub` drops it the same way,
at times the test chooses, including in the middle of a reconnect.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import threading
import time
from typing import Any

import pytest
import redis

from rooms.bus.names import BusNames
from rooms.bus.publisher import RedisPublisher
from rooms.bus.serialization import serialize
from rooms.bus.subscriber import RedisSubscriber
from tests.integration.recording import close_all, spread_clients
from tests.integration.servers import RedisServer, http, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


class RedisLoop:
    """A thread doing `step()` against one Redis again and again, until the block ends."""

    def __init__(self, url: str) -> None:
        self.client = redis.Redis.from_url(url, socket_timeout=2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Any:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.step()

    def step(self) -> None:
        raise NotImplementedError


class KillLoop(RedisLoop):
    """Drops every pub/sub connection of a Redis, again and again, at random intervals of a
    few milliseconds (so some kills land while a reconnect subscribes)."""

    def __init__(self, url: str, *, max_pause: float = 0.03) -> None:
        super().__init__(url)
        self.max_pause = max_pause
        self.kills = 0
        self.dropped = 0

    def step(self) -> None:
        self.dropped += int(self.client.execute_command("CLIENT", "KILL", "TYPE", "pubsub"))
        self.kills += 1
        time.sleep(random.uniform(0, self.max_pause))


def numsub(url: str, names: list[str]) -> dict[str, int]:
    client = redis.Redis.from_url(url, socket_timeout=2)
    return {name.decode(): int(n) for name, n in client.pubsub_numsub(*names)}


async def wait_subscribed(url: str, names: list[str], within: float) -> dict[str, int]:
    """NUMSUB of every name once each has a subscriber, or what it is at the deadline."""
    deadline = time.monotonic() + within
    while True:
        counts = await asyncio.to_thread(numsub, url, names)
        if all(counts.values()) or time.monotonic() > deadline:
            return counts
        await asyncio.sleep(0.1)


async def test_every_wanted_name_is_subscribed_again_after_a_storm_of_drops(
    private_redis: RedisServer,
) -> None:
    """Two seconds of `CLIENT KILL TYPE pubsub` every few ms: afterwards the worker's own
    channel and all 200 groups are subscribed again, and a message published to each
    arrives."""
    names = BusNames("storm")
    subscriber = RedisSubscriber([private_redis.url], names, timeout=1.0, health_interval=1.0)
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    subscriber.listen(inbox.put_nowait)
    publisher = RedisPublisher([private_redis.url], names)
    try:
        channel = await subscriber.new_channel("worker.")
        groups = [f"room-{n}" for n in range(200)]
        await asyncio.gather(*(subscriber.group_add(group) for group in groups))
        wanted = [channel, *(names.group(group) for group in groups)]
        assert all((await wait_subscribed(private_redis.url, wanted, 5)).values())

        with KillLoop(private_redis.url) as storm:
            await asyncio.sleep(2)
        assert storm.dropped > 10, "the storm must have dropped connections"

        counts = await wait_subscribed(private_redis.url, wanted, 10)
        assert [name for name, n in counts.items() if n != 1] == []
        await publisher.send(channel, {"type": "direct"})
        for group in groups:
            await publisher.group_send(group, {"type": "grouped", "group": group})
        received = [await asyncio.wait_for(inbox.get(), 5) for _ in range(1 + len(groups))]
        assert received[0] == {"type": "direct"}
        assert {m["group"] for m in received[1:]} == set(groups)
    finally:
        await subscriber.close()


async def test_drops_timed_to_land_during_each_resubscribe_do_not_leave_it_deaf(
    private_redis: RedisServer,
) -> None:
    """Each time the subscriber's connection appears, it is killed again at once (the
    reconnect is dropped while it resubscribes, or right after): 30 rounds, then quiet,
    and every wanted name is subscribed again."""
    names = BusNames("again")
    subscriber = RedisSubscriber([private_redis.url], names, timeout=1.0, health_interval=1.0)
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    subscriber.listen(inbox.put_nowait)
    killer = redis.Redis.from_url(private_redis.url, socket_timeout=2)
    try:
        channel = await subscriber.new_channel("worker.")
        groups = [f"room-{n}" for n in range(50)]
        await asyncio.gather(*(subscriber.group_add(group) for group in groups))
        wanted = [channel, *(names.group(group) for group in groups)]
        for _ in range(30):
            deadline = time.monotonic() + 5
            while not await asyncio.to_thread(killer.pubsub_channels, "again:*"):
                assert time.monotonic() < deadline, "no reconnect within 5 s"
                await asyncio.sleep(0.001)
            await asyncio.to_thread(killer.execute_command, "CLIENT", "KILL", "TYPE", "pubsub")
        counts = await wait_subscribed(private_redis.url, wanted, 10)
        assert [name for name, n in counts.items() if n != 1] == []
        await RedisPublisher([private_redis.url], names).group_send("room-7", {"type": "back"})
        assert await asyncio.wait_for(inbox.get(), 5) == {"type": "back"}
    finally:
        await subscriber.close()


class Flood(RedisLoop):
    """Publishes 16 KiB messages to one channel as fast as Redis takes them."""

    BLOB = serialize({"type": "flood", "pad": b"x" * 16384})

    def __init__(self, url: str, channel: str) -> None:
        super().__init__(url)
        self.channel = channel
        self.sent = 0

    def step(self) -> None:
        pipe = self.client.pipeline(transaction=False)
        for _ in range(20):
            pipe.publish(self.channel, self.BLOB)
        pipe.execute()
        self.sent += 20


async def test_a_subscriber_dropped_at_its_output_buffer_limit_comes_back(
    private_redis: RedisServer,
) -> None:
    """With `client-output-buffer-limit pubsub 64kb` and a slow reader, a flood on one group
    makes Redis drop the subscriber again and again, each reconnect included: once the flood
    stops, every wanted name is subscribed again and a message arrives."""
    admin = redis.Redis.from_url(private_redis.url, socket_timeout=2)
    admin.config_set("client-output-buffer-limit", "pubsub 65536 0 0")
    names = BusNames("flood")
    subscriber = RedisSubscriber([private_redis.url], names, timeout=1.0, health_interval=1.0)
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    def slow(message: dict[str, Any]) -> None:
        if message["type"] == "flood":
            time.sleep(0.0005)  # a busy worker: Redis's buffer for it fills up
        else:
            inbox.put_nowait(message)

    subscriber.listen(slow)
    try:
        channel = await subscriber.new_channel("worker.")
        groups = [f"room-{n}" for n in range(50)]
        await asyncio.gather(*(subscriber.group_add(group) for group in groups))
        wanted = [channel, *(names.group(group) for group in groups)]
        with (
            Flood(private_redis.url, names.group("room-0")),
            KillLoop(private_redis.url, max_pause=0.2),
        ):
            await asyncio.sleep(3)
        counts = await wait_subscribed(private_redis.url, wanted, 10)
        assert [name for name, n in counts.items() if n != 1] == []
        await RedisPublisher([private_redis.url], names).group_send("room-7", {"type": "back"})
        assert await asyncio.wait_for(inbox.get(), 5) == {"type": "back"}
    finally:
        await subscriber.close()


async def test_no_worker_of_a_cluster_is_left_deaf_after_a_storm_of_drops(
    private_redis: RedisServer, start_cluster: Any
) -> None:
    """A 2-worker cluster with sockets of one room on both workers. Redis keeps a tiny
    pub/sub output buffer and drops every subscriber every few ms for 3 s (long enough for
    the workers to remove each other from the directory), while the sockets keep sending.
    Afterwards both workers are back in GET /workers, the roster is exact, and an
    identity-change sent from one worker reaches a socket on the other."""
    cluster = await asyncio.to_thread(start_cluster, 2, private_redis)
    room = "storm"
    clients = await spread_clients(cluster.url, room, 6)
    admin = redis.Redis.from_url(private_redis.url, socket_timeout=2)
    try:
        first = clients[0]
        other = next(c for c in clients if c.procid != first.procid)
        default_limit = admin.config_get("client-output-buffer-limit")["client-output-buffer-limit"]
        admin.config_set("client-output-buffer-limit", "pubsub 2048 0 0")
        with KillLoop(private_redis.url, max_pause=0.002) as storm:
            # 3 s at least; longer while the workers' reconnect backoff has kept the drops few
            for n in itertools.count():
                if n >= 30 and (storm.dropped > 10 or n >= 150):
                    break
                await clients[n % len(clients)].sio.emit("identity-change", {"name": f"n{n}"})
                await asyncio.sleep(0.1)
        admin.config_set("client-output-buffer-limit", default_limit)
        assert storm.dropped > 10

        await asyncio.to_thread(cluster.wait_for_workers, 2, 15)

        def complete_roster() -> tuple[int, dict[str, str], Any] | None:
            """The roster once every worker answers it (each worker's janitor sees the
            other back in the directory within an interval or two of its return)."""
            answer = http(f"{cluster.url}/{room}/users")
            headers = answer[1]
            counts = (headers.get("X-Workers-Expected"), headers.get("X-Workers-Responded"))
            return answer if counts == ("2", "2") else None

        status, _, body = await asyncio.to_thread(wait_until, complete_roster, 5, "a roster of 2")
        assert status == 200
        assert sorted(e["id_socket"] for e in body) == sorted(c.sid for c in clients)

        await first.sio.emit("identity-change", {"name": "after-the-storm"})
        relayed = await other.wait_for(
            "identity-change", lambda p: p.get("name") == "after-the-storm", within=5
        )
        assert relayed == {"name": "after-the-storm", "id_user": "1"}
    finally:
        await close_all(clients)
