"""Frames built to cost a worker CPU: each is refused for a bounded, small cost, with a
clear answer, while a well-behaved room is served within 1 s and no worker is announced
down (tests/hostile/harm.py)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator

import pytest

from tests.hostile.harm import Unharmed, cpu_seconds, pair_on_two_workers
from tests.integration.conftest import module_cluster
from tests.integration.servers import Cluster, RedisServer
from tests.integration.wire import closed_by_server, engineio_open, recv_packet, socket_count

# Issue 29's frame: an unterminated string of escaped quotes, then commas past the 10,000
# elements that make the codec look inside strings. A backtracking pattern spent 7 s of a
# worker on it; the second, under maxPayload, would have taken an hour.
BACKTRACKING = '40{"id_user":"' + '\\"' * 12_000 + "," * 10_001
BACKTRACKING_1MB = '40{"id_user":"' + '\\"' * 240_000 + "," * 500_000
CPU_PER_FRAME_S = 0.5  # receiving 1 MB and closing included


@pytest.fixture(scope="module")
def cluster(
    redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    yield from module_cluster(2, redis_server, tmp_path_factory)


async def test_a_frame_built_to_make_a_pattern_backtrack_is_refused_at_once(
    cluster: Cluster,
) -> None:
    """Eight connections (so both workers get some) each send one such frame before any
    CONNECT: each gets CONNECT_ERROR "invalid JSON payload" and is closed."""
    assert len(BACKTRACKING_1MB) < 1_000_000
    room = f"calm-{uuid.uuid4().hex[:8]}"
    first, second = await pair_on_two_workers(cluster, room)
    pids = cluster.children()
    cpu_before = sum(cpu_seconds(pid) for pid in pids)

    async def attacker(frame: str) -> list[str | bytes]:
        ws, _ = await engineio_open(cluster)
        await ws.send(frame)
        return await closed_by_server(ws, within=10)

    frames = [BACKTRACKING] * 4 + [BACKTRACKING_1MB] * 4
    try:
        async with Unharmed(cluster, room, [first.sid, second.sid]).watching():
            received = await asyncio.gather(*(attacker(frame) for frame in frames))
        cpu = sum(cpu_seconds(pid) for pid in pids) - cpu_before
        for answer in received:
            assert len(answer) == 1, answer
            message = json.loads(str(answer[0])[2:])["message"]
            assert str(answer[0]).startswith("44"), answer
            assert message.startswith("invalid JSON payload: Unterminated string"), message
        assert cpu / len(frames) < CPU_PER_FRAME_S, cpu
        assert first.payloads("worker-down") == second.payloads("worker-down") == []
        assert await socket_count(cluster) == 2
    finally:
        await first.close()
        await second.close()


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        ('40{"id_user":' + "7" * 5_000 + "}", "a JSON integer longer than 100 digits"),
        ('40{"id_user":"' + "7" * 5_000 + '"}', "id_user longer than 10 characters"),
    ],
    ids=["number", "string"],
)
async def test_a_connect_with_a_5000_digit_id_user_gets_connect_error(
    cluster: Cluster, frame: str, message: str
) -> None:
    ws, _ = await engineio_open(cluster)
    try:
        await ws.send(frame)
        assert json.loads((await recv_packet(ws))[2:]) == {"message": message}
        await ws.send('40{"id_user":"1"}')
        assert (await recv_packet(ws)).startswith('40{"sid":')
    finally:
        await ws.close()
