"""Frames built to cost a worker CPU: each is refused for a bounded, small cost, with a
clear answer, while a well-behaved room is served within 1 s and no worker is announced
down (tests/hostile/harm.py). Valid but costly traffic is bounded too: bytes of frames
per connection (SOCKETIO_BYTE_RATE), refused CONNECTs per address per worker
(SOCKETIO_CONNECT_REFUSALS_PER_MINUTE)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator

import pytest
from websockets.exceptions import InvalidStatus

from tests.hostile.harm import Unharmed, cpu_seconds, pair_on_two_workers
from tests.integration.conftest import module_cluster
from tests.integration.servers import Cluster, RedisServer
from tests.integration.wire import (
    closed_by_server,
    engineio_open,
    flood,
    open_raw,
    recv,
    recv_packet,
    socket_count,
    socketio_connect,
    socketio_url,
)

# Issue 29's frame: an unterminated string of escaped quotes, then commas past the 10,000
# elements that make the codec look inside strings. A backtracking pattern spent 7 s of a
# worker on it; the second, under maxPayload, would have taken an hour.
BACKTRACKING = '40{"id_user":"' + '\\"' * 12_000 + "," * 10_001
BACKTRACKING_1MB = '40{"id_user":"' + '\\"' * 240_000 + "," * 500_000
CPU_PER_FRAME_S = 0.5  # receiving 1 MB and closing included
# A valid frame of ~1 MB (issue 29: 120-133 ms to decode; 4 sockets x 25 of them kept a
# worker busy for 15 s).
COMMAS = '42["x","' + "," * 999_000 + '"]'
REFUSALS_PER_MINUTE = 60  # SOCKETIO_CONNECT_REFUSALS_PER_MINUTE for this module's cluster
WORKERS = 2
OTHER_ADDRESS = "127.0.0.2"


@pytest.fixture(scope="module")
def cluster(
    redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    yield from module_cluster(
        WORKERS,
        redis_server,
        tmp_path_factory,
        SOCKETIO_CONNECT_REFUSALS_PER_MINUTE=str(REFUSALS_PER_MINUTE),
    )


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
        print(f"{len(frames)} frames refused; workers' CPU meanwhile {cpu:.2f} s")
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


async def test_sockets_sending_valid_1mb_frames_are_cut_off_past_their_byte_rate(
    cluster: Cluster,
) -> None:
    """Four connected sockets each try 25 valid frames of 1 MB back to back: the first is
    served (one frame of the largest size is the burst), the next gets `error` "too many
    bytes" and the socket is disconnected."""
    room = f"calm-{uuid.uuid4().hex[:8]}"
    first, second = await pair_on_two_workers(cluster, room)
    pids = cluster.children()
    cpu_before = sum(cpu_seconds(pid) for pid in pids)

    async def attacker() -> list[str | bytes]:
        ws, _, _ = await socketio_connect(cluster, id_user="7")
        await flood(ws, [COMMAS] * 25)
        return await closed_by_server(ws, within=10)

    try:
        async with Unharmed(cluster, room, [first.sid, second.sid]).watching():
            received = await asyncio.gather(*(attacker() for _ in range(4)))
        cpu = sum(cpu_seconds(pid) for pid in pids) - cpu_before
        print(f"4 sockets cut off after {[len(f) for f in received]} frames; CPU {cpu:.2f} s")
        for frames in received:
            errors = [json.loads(str(f)[2:]) for f in frames if str(f).startswith('42["error"')]
            assert errors == [["error", {"message": "too many bytes: disconnecting"}]], frames
        assert cpu < 4 * 2 * CPU_PER_FRAME_S, cpu
        assert first.payloads("worker-down") == second.payloads("worker-down") == []
        assert await socket_count(cluster) == 2
    finally:
        await first.close()
        await second.close()


async def test_refused_connects_from_one_address_are_bounded_per_worker(
    cluster: Cluster,
) -> None:
    """60 connections each try three unknown users (180 refusals asked for): each worker
    refuses at most REFUSALS_PER_MINUTE (plus what refills meanwhile) with "Unknown
    id_user", then says "too many refused CONNECTs from this address" and closes, or
    refuses the handshake (403); another address is answered as usual meanwhile."""
    room = f"calm-{uuid.uuid4().hex[:8]}"
    first, second = await pair_on_two_workers(cluster, room)
    answers: list[str] = []
    handshakes_refused = 0

    async def attacker(n: int) -> None:
        nonlocal handshakes_refused
        try:
            ws, _ = await engineio_open(cluster)
        except InvalidStatus as exc:
            assert exc.response.status_code == 403
            handshakes_refused += 1
            return
        await flood(ws, (f'40{{"id_user":"{800000 + 3 * n + i}"}}' for i in range(3)))
        for frame in await closed_by_server(ws, within=10):
            answers.append(json.loads(str(frame)[2:])["message"])

    try:
        async with Unharmed(cluster, room, [first.sid, second.sid]).watching():
            started = asyncio.get_running_loop().time()
            await asyncio.gather(*(attacker(n) for n in range(60)))
            took = asyncio.get_running_loop().time() - started
            other = await open_raw(socketio_url(cluster), local_addr=(OTHER_ADDRESS, 0))
            assert str(await recv(other)).startswith("0{")
            await other.send('40{"id_user":"799999"}')
            assert json.loads((await recv_packet(other))[2:]) == {
                "message": "Unknown id_user: 799999"
            }
            await other.close()
        unknown = [a for a in answers if a.startswith("Unknown id_user")]
        over = [a for a in answers if a == "too many refused CONNECTs from this address"]
        assert len(unknown) + len(over) == len(answers), answers
        refills = WORKERS * (took + 1) * REFUSALS_PER_MINUTE / 60
        assert len(unknown) <= WORKERS * REFUSALS_PER_MINUTE + refills, len(unknown)
        assert over or handshakes_refused, answers
        assert await socket_count(cluster) == 2
    finally:
        await first.close()
        await second.close()
