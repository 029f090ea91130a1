"""Thousands of sockets in 100 rooms each, all cut off at once: leaving costs each socket a
bounded, small amount and never waits on Redis inside its application instance, so daphne
kills none of them (`application_close_timeout`), and everything they held is released:
the per-address connection counts, the room subscriptions in Redis, the registry's
entries, and the memory, which CPython's object allocator gives back only when the idle
worker is recycled (rooms.runner.recycling).

The suite runs 300 sockets per worker (SOCKETS_PER_WORKER; about 35 s on a 2-core
machine), where one UNSUBSCRIBE per room left would still be released in time; what
shows its cost there is the count of UNSUBSCRIBE commands. The issue's size, 2,000 per
worker x 100 rooms, passes the same test in about 90 s: each round released in 2.3-2.6 s,
RSS 84-85 MB at the start, 210-212 MB after the first round, 222-232 MB after the second,
83 MB for the successors of the recycled workers.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from websockets.exceptions import InvalidStatus

from tests.hostile.harm import rss_mb
from tests.integration.conftest import module_cluster
from tests.integration.servers import Cluster, RedisServer, http
from tests.integration.wire import engineio_open, open_raw, recv_packet, socketio_url

SOCKETS_PER_WORKER = 300
ROOMS_PER_SOCKET = 100  # SOCKETIO_MAX_ROOMS_PER_SOCKET's default
# The per-address cap: above what one worker holds (the kernel spreads the connections
# unevenly over the two workers), low enough that a leaked count shows at once.
CAP = SOCKETS_PER_WORKER + max(100, SOCKETS_PER_WORKER // 4)
OPENING_AT_ONCE = 50
# What a worker's resident memory may grow by in a second round, against the first: the
# issue saw 90 -> 190 MB kept after one round of 900 sockets per worker. (CPython's object
# allocator keeps a round's arenas, each held by a few blocks still in use, about 40 MB
# over the start at 600 sockets per worker, 120 MB at 2,000, with its allocated blocks
# back to where they started: bench/README.md, "A mass disconnect". That memory is
# reused, not grown, by the next round: +0.3%
# at 2,000 sockets, up to +9% at the suite's 300, where a few MB of the allocators' noise
# weigh more.)
RSS_KEPT = 0.15
# What the workers' resident memory may exceed the start's by once they are idle: the
# issue's bound, and WORKER_RECYCLE_RSS_GROWTH's default.
RSS_BACK = 0.10
# The keepers' source address: one socket on each worker keeps it from being idle (and so
# recycled) while the rounds run, outside the per-address count of the members'.
KEEPER_ADDRESS = "127.0.0.2"

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def cluster(own_redis: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    yield from module_cluster(
        2,
        own_redis,
        tmp_path_factory,
        SOCKETIO_MAX_CONNECTIONS_PER_ADDRESS=str(CAP),
        SOCKETIO_FRAME_RATE="1000",  # the joins go out in one burst per socket
        SOCKETIO_PING_INTERVAL_MS="600000",  # idle sockets need not answer pings
        WORKER_MALLOC_TRIM_INTERVAL="1",
        WORKER_RECYCLE_RSS_GROWTH=str(RSS_BACK),
        WORKER_RECYCLE_IDLE_S="1",
    )


def channels(url: str, prefix: str) -> dict[str, int]:
    """Every channel of the cluster Redis has a subscriber on, with its NUMSUB."""
    client = redis.Redis.from_url(url, socket_timeout=10)
    try:
        names = client.pubsub_channels(f"{prefix}:*")
        return {name.decode(): int(n) for name, n in client.pubsub_numsub(*names)} if names else {}
    finally:
        client.close()


def unsubscribe_calls(url: str) -> int:
    """UNSUBSCRIBE commands Redis has run so far (INFO commandstats), whatever they named."""
    client = redis.Redis.from_url(url, socket_timeout=10)
    try:
        stats: dict[str, Any] = client.info("commandstats")  # type: ignore[assignment]
    finally:
        client.close()
    return int(stats.get("cmdstat_unsubscribe", {}).get("calls", 0))


def workers(cluster: Cluster) -> list[dict[str, Any]]:
    status, _, body = http(f"{cluster.url}/workers", timeout=10)
    assert status == 200, (status, body)
    return sorted(body, key=lambda w: w["pid"])


async def member(cluster: Cluster, index: int, rooms: list[str]) -> tuple[Any, str]:
    """A raw socket (user 1-10) in `rooms`: the first joined at CONNECT, the others in one
    burst, the last with an ack that says all are done. Returns (socket, its procid)."""
    ws = await open_raw(socketio_url(cluster), open_timeout=60)
    frame = await recv_packet(ws, 60)
    assert frame.startswith("0{"), frame
    await ws.send("40" + json.dumps({"id_user": str(1 + index % 10), "room": rooms[0]}))
    reply = await recv_packet(ws, 60)
    assert reply.startswith('40{"sid":'), reply
    handshake = await recv_packet(ws, 60)
    procid = json.loads(handshake[2:])[1]["procid"]
    for room in rooms[1:-1]:
        await ws.send("42" + json.dumps(["join", room]))
    await ws.send("421" + json.dumps(["join", rooms[-1]]))
    while not (frame := await recv_packet(ws, 120)).startswith("431"):
        pass
    assert frame == '431[{"ok":true}]', frame
    return ws, procid


async def keepers(cluster: Cluster) -> list[Any]:
    """One socket from KEEPER_ADDRESS on each worker (the kernel picks the worker: extras
    are closed again)."""
    held: dict[str, Any] = {}
    extras = []
    while len(held) < 2:
        assert len(extras) < 50, "the kernel gave 50 connections in a row to one worker"
        ws = await open_raw(socketio_url(cluster), local_addr=(KEEPER_ADDRESS, 0))
        assert (await recv_packet(ws)).startswith("0{")
        await ws.send('40{"id_user":"1"}')
        assert (await recv_packet(ws)).startswith('40{"sid":')
        procid = json.loads((await recv_packet(ws))[2:])[1]["procid"]
        if procid in held:
            extras.append(ws)
        else:
            held[procid] = ws
    await asyncio.gather(*(ws.close() for ws in extras))
    return list(held.values())


async def open_members(cluster: Cluster, per_worker: int) -> list[Any]:
    """Sockets until each worker holds `per_worker` (the kernel picks the worker; a socket
    beyond a worker's share is closed again at once)."""
    tag = uuid.uuid4().hex[:6]
    held: dict[str, list[Any]] = {}
    gate = asyncio.Semaphore(OPENING_AT_ONCE)
    count = 0

    def full() -> bool:
        return len(held) == 2 and all(len(s) >= per_worker for s in held.values())

    async def one(index: int) -> None:
        async with gate:
            if full():
                return
            rooms = [f"{tag}-{index}-{r}" for r in range(ROOMS_PER_SOCKET)]
            try:
                ws, procid = await member(cluster, index, rooms)
            except InvalidStatus:  # that worker holds its share and closed extras not yet
                await asyncio.sleep(0.5)
                return
            mine = held.setdefault(procid, [])
            if len(mine) < per_worker:
                mine.append(ws)
            else:
                await ws.close()

    while not full():
        assert count < 8 * per_worker, {p: len(s) for p, s in held.items()}
        batch = range(count, count + 2 * per_worker - sum(len(s) for s in held.values()) + 10)
        count = batch.stop
        await asyncio.gather(*(one(i) for i in batch))
    return [ws for sockets in held.values() for ws in sockets]


async def admitted_up_to_the_cap(cluster: Cluster) -> dict[str, int]:
    """Open Engine.IO connections until each worker admits CAP, or 4 x CAP of them are
    refused; returns how many each worker admitted (read from a CONNECT on each).

    The kernel hands each connection to whichever worker accepts first, and a worker busy
    after the round may lose every race for a while: a worker at its cap then refuses
    them all (a CI run saw 400 refusals in a row, all from the full worker, while the
    other had admitted 268). Each refusal is followed by a short pause that lets the other
    worker be scheduled, and the bound is wide enough for such a run of losses; a worker
    whose count leaked refuses too, and stays below CAP."""
    opened: list[Any] = []
    per_worker: dict[str, int] = {}
    refused = 0
    try:
        while refused < 4 * CAP and not (
            len(per_worker) == 2 and all(n >= CAP for n in per_worker.values())
        ):
            try:
                ws, _ = await engineio_open(cluster)
            except Exception:  # the handshake refused: that worker is at its cap
                refused += 1
                await asyncio.sleep(0.01)
                continue
            opened.append(ws)
            await ws.send('40{"id_user":"1"}')
            reply = await recv_packet(ws)
            assert reply.startswith('40{"sid":'), reply
            procid = json.loads((await recv_packet(ws))[2:])[1]["procid"]
            per_worker[procid] = per_worker.get(procid, 0) + 1
        return per_worker
    finally:
        await asyncio.gather(*(ws.close() for ws in opened))


async def wait_for(condition: Any, within: float) -> Any:
    deadline = time.monotonic() + within
    while True:
        result = await asyncio.to_thread(condition)
        if result or time.monotonic() > deadline:
            return result
        await asyncio.sleep(0.5)


async def cut_off_at_once(
    cluster: Cluster, own_redis: RedisServer, baseline: Any
) -> tuple[float, int]:
    """SOCKETS_PER_WORKER sockets in 100 rooms each on both workers (beside each worker's
    keeper, in no room), their connections reset at the same moment; returns the seconds
    until /workers and Redis show nothing of them any more (30 s at most), and the
    UNSUBSCRIBE commands that took."""
    sockets = await open_members(cluster, SOCKETS_PER_WORKER)

    def all_there() -> bool:  # the extras closed by open_members are gone too
        return [(w["sockets"], w["rooms"]) for w in workers(cluster)] == [
            (SOCKETS_PER_WORKER + 1, SOCKETS_PER_WORKER * ROOMS_PER_SOCKET)
        ] * 2

    assert await wait_for(all_there, 10), workers(cluster)
    unsubscribes = await asyncio.to_thread(unsubscribe_calls, own_redis.url)
    for ws in sockets:  # a reset, as from clients whose network went away
        ws.transport.abort()
    left_at = time.monotonic()

    def all_gone() -> bool:
        return all(w["sockets"] == 1 and w["rooms"] == 0 for w in workers(cluster))

    assert await wait_for(all_gone, 30), workers(cluster)

    def channels_back() -> bool:
        return channels(own_redis.url, cluster.prefix) == baseline

    assert await wait_for(channels_back, 30), (
        len(await asyncio.to_thread(channels, own_redis.url, cluster.prefix)),
        len(baseline),
    )
    took = time.monotonic() - left_at
    return took, await asyncio.to_thread(unsubscribe_calls, own_redis.url) - unsubscribes


async def test_thousands_of_sockets_in_100_rooms_each_cut_off_at_once_leave_nothing_behind(
    cluster: Cluster, own_redis: RedisServer
) -> None:
    """Twice, SOCKETS_PER_WORKER sockets on each of two workers, each in 100 rooms of its
    own, have their TCP connections reset at the same moment. Each time, within 30 s,
    /workers reports only the keepers' sockets and 0 rooms and Redis holds exactly the
    channels it held before they came, having run at most one UNSUBSCRIBE per 100 rooms
    left. Then each
    worker admits CAP connections from their address again, its RSS is within RSS_KEPT
    of what it was after the first round (nothing per socket is kept), and daphne killed
    no application instance. Once the keepers leave too, each worker is idle with its RSS
    past the bound, is recycled, and its successor's RSS is within RSS_BACK of the start."""
    held = await keepers(cluster)
    baseline = await asyncio.to_thread(channels, own_redis.url, cluster.prefix)
    pids = cluster.children()
    log_start = len(cluster.logs())
    rss_start = {pid: rss_mb(pid) for pid in pids}

    first, first_commands = await cut_off_at_once(cluster, own_redis, baseline)
    await asyncio.sleep(3)  # WORKER_MALLOC_TRIM_INTERVAL has passed
    rss_first = {pid: rss_mb(pid) for pid in pids}
    second, second_commands = await cut_off_at_once(cluster, own_redis, baseline)
    rooms_left = 2 * SOCKETS_PER_WORKER * ROOMS_PER_SOCKET
    assert max(first_commands, second_commands) <= rooms_left / 100, (
        f"{first_commands} and {second_commands} UNSUBSCRIBEs for {rooms_left} rooms"
    )

    admitted = await admitted_up_to_the_cap(cluster)
    assert sorted(admitted.values()) == [CAP, CAP], admitted

    def memory_reused() -> dict[int, float] | None:
        now = {pid: rss_mb(pid) for pid in pids}
        return now if all(now[p] <= rss_first[p] * (1 + RSS_KEPT) for p in pids) else None

    rss_second = await wait_for(memory_reused, 10) or {pid: rss_mb(pid) for pid in pids}
    assert all(rss_second[p] <= rss_first[p] * (1 + RSS_KEPT) for p in pids), (
        rss_start,
        rss_first,
        rss_second,
    )
    assert "took too long to shut down" not in cluster.logs()[log_start:]
    assert cluster.children() == pids

    await asyncio.gather(*(ws.close() for ws in held))

    def successors() -> list[int] | None:  # new workers, each listed in the cluster
        now = cluster.children()
        listed = sorted(w["pid"] for w in cluster.live_workers())
        return now if not set(now) & set(pids) and listed == sorted(now) else None

    fresh = await wait_for(successors, 30)
    assert fresh, (pids, cluster.children(), cluster.live_workers())
    await asyncio.sleep(2)  # their start-up done: the heap frozen, memory trimmed once
    rss_back = {pid: rss_mb(pid) for pid in fresh}
    print(
        f"released in {first:.1f} s and {second:.1f} s by {first_commands} and "
        f"{second_commands} UNSUBSCRIBEs; RSS MB at start {rss_start}, after the first "
        f"round {rss_first}, after the second {rss_second}, of the successors {rss_back}"
    )
    bound = max(rss_start.values()) * (1 + RSS_BACK)
    assert all(rss <= bound for rss in rss_back.values()), (rss_start, rss_second, rss_back)
