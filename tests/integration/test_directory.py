"""The worker directory against real Redis servers: liveness by subscription AND heartbeat."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from rooms.bus.directory import RedisDirectory, WorkerInfo
from rooms.bus.names import shard_index
from rooms.cluster.membership import Janitor
from tests.integration.servers import RedisServer

pytestmark = pytest.mark.integration


@pytest.fixture
def second_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    yield server
    server.stop()


def worker(name: str) -> WorkerInfo:
    return WorkerInfo(procid=name, channel=f"ch.{name}.{uuid.uuid4().hex}", pid=1, host="h",
                      started=0.0)  # fmt: skip


@pytest.fixture
async def subscribe(redis_server: RedisServer, second_redis: RedisServer) -> AsyncIterator:
    """Subscribe a channel on the server the bus carries it on, of the two."""
    urls = [redis_server.url, second_redis.url]
    clients = [aioredis.Redis.from_url(url) for url in urls]
    pubsubs = []

    async def on_its_shard(channel: str) -> None:
        pubsub = clients[shard_index(channel, 2)].pubsub()
        await pubsub.subscribe(channel)
        pubsubs.append(pubsub)

    yield on_its_shard
    for pubsub in pubsubs:
        await pubsub.aclose()
    for client in clients:
        await client.aclose()


async def test_alive_needs_a_subscriber_on_the_channels_own_shard(
    redis_server: RedisServer, second_redis: RedisServer, subscribe
) -> None:
    """Over two servers, each channel's NUMSUB is asked of its own shard."""
    directory = RedisDirectory([redis_server.url, second_redis.url], prefix=uuid.uuid4().hex)
    workers = [worker(f"w{i}") for i in range(8)]
    while {shard_index(w.channel, 2) for w in workers[:5]} != {0, 1}:
        workers = [worker(f"w{i}") for i in range(8)]  # make both shards hold live workers
    for w in workers:
        await directory.register(w)
    for w in workers[:5]:
        await subscribe(w.channel)
    alive, dead = await directory.scan()
    assert {w.procid for w in alive} == {w.procid for w in workers[:5]}
    assert {w.procid for w in dead} == {w.procid for w in workers[5:]}


async def test_expired_heartbeat_is_dead_even_while_subscribed(
    redis_server: RedisServer, second_redis: RedisServer, subscribe
) -> None:
    """A partitioned worker keeps its subscription; its heartbeat expiring marks it dead."""
    urls = [redis_server.url, second_redis.url]
    # The TTL is long against this machine's scheduling noise: the beating worker's key is
    # refreshed right before each scan, so it could only expire if one await took 1.5 s.
    ttl = 1.5
    directory = RedisDirectory(urls, prefix=uuid.uuid4().hex, ttl=ttl)
    beating, silent = worker("beating"), worker("silent")
    for w in (beating, silent):
        await directory.register(w)
        await subscribe(w.channel)
    assert len((await directory.scan())[0]) == 2
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10 * ttl
    while True:  # until the silent worker's key expires (Redis's own clock, PX)
        await directory.heartbeat(beating.procid)
        alive, dead = await directory.scan()
        if dead or loop.time() > deadline:
            break
        await asyncio.sleep(0.05)
    assert ([w.procid for w in alive], [w.procid for w in dead]) == (["beating"], ["silent"])
    await directory.heartbeat(silent.procid)  # the partition heals
    assert len((await directory.scan())[0]) == 2


async def test_entries_of_newer_workers_are_read_and_unreadable_ones_skipped(
    redis_server: RedisServer, second_redis: RedisServer, subscribe
) -> None:
    """A rolling deploy: a newer worker's entry may carry fields this version lacks."""
    prefix = uuid.uuid4().hex
    directory = RedisDirectory([redis_server.url, second_redis.url], prefix=prefix)
    newer = worker("newer")
    client = aioredis.Redis.from_url(redis_server.url)
    try:
        entry = {**dataclasses.asdict(newer), "speaks": ["roster_json", "roster_v2"]}
        await client.hset(f"{prefix}:workers", mapping={
            "newer": json.dumps(entry), "garbage": "{not json", "partial": '{"procid": "p"}'
        })  # fmt: skip
        await client.set(f"{prefix}:alive:newer", 1)
    finally:
        await client.aclose()
    await subscribe(newer.channel)
    alive, dead = await directory.scan()
    assert (alive, dead) == ([newer], [])


class RemovesTogether:
    """A directory whose `remove` waits until every janitor has reached it: the sweeps of
    the survivors overlap completely, which in a real cluster happens only by chance."""

    def __init__(self, directory: RedisDirectory, barrier: asyncio.Barrier) -> None:
        self.directory = directory
        self.barrier = barrier

    def __getattr__(self, name: str) -> object:
        return getattr(self.directory, name)

    async def remove(self, procid: str) -> bool:
        await self.barrier.wait()
        return await self.directory.remove(procid)


async def test_one_janitor_announces_a_dead_worker_though_all_remove_it_at_once(
    redis_server: RedisServer, second_redis: RedisServer, subscribe
) -> None:
    """Three survivors see the same dead worker on the same two sweeps and all try to
    remove it at the same moment: HDEL answers 1 to exactly one of them, and only that one
    announces worker-down (rooms.cluster.membership.Janitor.sweep)."""
    urls = [redis_server.url, second_redis.url]
    prefix = uuid.uuid4().hex
    survivors = [worker(f"s{i}") for i in range(3)]
    dead = worker("dead")
    barrier = asyncio.Barrier(len(survivors))
    announced: list[tuple[str, str]] = []
    janitors = []

    async def nothing() -> None:
        return None

    for me in survivors:
        directory = RedisDirectory(urls, prefix=prefix)
        await directory.register(me)
        await subscribe(me.channel)

        async def announce(procid: str, by: str = me.procid) -> None:
            announced.append((by, procid))

        janitors.append(Janitor(
            directory=RemovesTogether(directory, barrier), info=lambda me=me: me,
            saw_alive=lambda alive: None, announce_down=announce, on_return=nothing,
            interval=60.0,
        ))  # fmt: skip
    await janitors[0].directory.register(dead)  # listed, never subscribed: dead
    for _ in range(2):  # a worker must look dead on two sweeps in a row
        await asyncio.wait_for(asyncio.gather(*(j.sweep() for j in janitors)), 10)
    assert [procid for _, procid in announced] == ["dead"], announced
    alive, gone = await janitors[0].directory.scan()
    assert (sorted(w.procid for w in alive), gone) == (["s0", "s1", "s2"], [])
