"""Expensive frames: eight sockets sending ~750 KB of nested empty arrays, reconnecting
after each, for a few seconds. A frame over 10,000 JSON elements is refused by counting
brackets before it is decoded (decoding one cost 140-190 ms of CPU, and eight such sockets
pinned a worker for 38 s): the connection is closed at once, the workers spend a few ms of
CPU per frame, and the well-behaved are answered within 1 s throughout."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import pytest

from tests.hostile.attacks import EXPENSIVE_FRAME, Tally, expensive_frames
from tests.hostile.clusters import SharedClusters
from tests.hostile.harm import Unharmed, cpu_seconds, pair_on_two_workers
from tests.integration.servers import Cluster

ATTACKERS = 8
ATTACK_S = 5.0
CPU_PER_FRAME_S = 0.02  # connection set-up and teardown included


@pytest.fixture(scope="module")
def cluster(hostile_clusters: SharedClusters) -> Iterator[Cluster]:
    yield from hostile_clusters.for_module("development")


async def test_eight_sockets_sending_expensive_frames_do_not_stall_a_worker(
    cluster: Cluster,
) -> None:
    assert 700_000 < len(EXPENSIVE_FRAME) < 1_000_000
    room = f"calm-{uuid.uuid4().hex[:8]}"
    first, second = await pair_on_two_workers(cluster, room)
    tallies = [Tally() for _ in range(ATTACKERS)]
    stop = asyncio.Event()
    pids = cluster.children()
    cpu_before = sum(cpu_seconds(pid) for pid in pids)
    try:
        async with Unharmed(cluster, room, [first.sid, second.sid]).watching():
            attack = [asyncio.create_task(expensive_frames(cluster, stop, t)) for t in tallies]
            for i in range(int(ATTACK_S * 10)):
                await first.sio.emit("identity-change", {"name": f"calm {i}"})
                await asyncio.sleep(0.1)
            stop.set()
            await asyncio.gather(*attack)
            await second.wait_for("identity-change", lambda p: p.get("name") == f"calm {i}")
        cpu = sum(cpu_seconds(pid) for pid in pids) - cpu_before
        frames = sum(t.frames for t in tallies)
        assert frames >= ATTACKERS * 5, [t.frames for t in tallies]
        assert cpu / frames < CPU_PER_FRAME_S, (cpu, frames)
        # closed at once: the time to receive 750 KB on a loaded machine, not to decode it
        assert max(t.slowest_close for t in tallies) < 2.0
        assert [t.refusals for t in tallies] == [[]] * ATTACKERS
        got = [p["name"] for p in second.payloads("identity-change")]
        assert got == [f"calm {i}" for i in range(int(ATTACK_S * 10))]
    finally:
        await first.close()
        await second.close()
