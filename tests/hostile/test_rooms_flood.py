"""A socket in many rooms sending identity-changes: the rooms it may join are capped at
SOCKETIO_MAX_ROOMS_PER_SOCKET, and what each of its events moves through Redis grows
linearly with its rooms (one message per room, not a room list in each: 100 rooms of
100-character names made 1 MB of Redis traffic per identity-change, 408 MB at 2000).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import pytest

from tests.hostile.attacks import many_rooms
from tests.hostile.harm import (
    Unharmed,
    call,
    join_paced,
    pair_on_two_workers,
    redis_traffic,
    traffic_since,
)
from tests.integration.conftest import module_cluster
from tests.integration.servers import Cluster, RedisServer, http
from tests.integration.wire import closed_by_server, events_until_quiet, flood, socketio_connect

MAX_ROOMS = 100  # SOCKETIO_MAX_ROOMS_PER_SOCKET's default
# What one room's message may cost Redis, in and out, for a 100-character room name and a
# small identity-change: the channel name, the frame, the framing. A room list in each
# message (the quadratic fan-out) costs 100 times that at 100 rooms.
BYTES_PER_ROOM = 1500


@pytest.fixture(scope="module")
def cluster(own_redis: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    yield from module_cluster(2, own_redis, tmp_path_factory)


async def test_a_join_beyond_the_cap_is_refused(cluster: Cluster) -> None:
    """100 joins are acked ok, the 101st {"ok": false} with the reason; the socket stays
    connected and in exactly its 100 rooms."""
    rooms = many_rooms(MAX_ROOMS + 1)
    ws, sid, _ = await socketio_connect(cluster, id_user="3")
    try:
        replies = await join_paced(ws, rooms)
        assert replies[:MAX_ROOMS] == [{"ok": True}] * MAX_ROOMS
        assert replies[MAX_ROOMS] == {"ok": False, "error": "a socket may be in at most 100 rooms"}
        for room in (rooms[0], rooms[MAX_ROOMS - 1]):
            assert [e["id_socket"] for e in http(f"{cluster.url}/{room}/users")[2]] == [sid]
        assert http(f"{cluster.url}/{rooms[MAX_ROOMS]}/users")[2] == []
        assert await call(ws, 999, "leave", rooms[0]) == {"ok": True}
        assert await call(ws, 1000, "join", rooms[MAX_ROOMS]) == {"ok": True}  # room again
    finally:
        await ws.close()


async def test_identity_changes_from_a_socket_in_many_rooms_cost_linear_traffic(
    cluster: Cluster, own_redis: RedisServer
) -> None:
    """A socket in 100 rooms of 100-character names sends 40 identity-changes (the rate
    allows 20 a second), then is renamed over HTTP, then disconnects: Redis moves at most
    BYTES_PER_ROOM per room per event, in each direction. A well-behaved pair on the two
    workers is answered within 1 s throughout and hears every one of the attacker's events
    in their room."""
    rooms = many_rooms(MAX_ROOMS)
    calm = f"calm-{uuid.uuid4().hex[:8]}"
    first, second = await pair_on_two_workers(cluster, calm)
    ws, sid, _ = await socketio_connect(cluster, id_user="3")
    try:
        assert await join_paced(ws, [*rooms[:-1], calm]) == [{"ok": True}] * MAX_ROOMS
        await events_until_quiet(ws, quiet=0.3)
        watch = Unharmed(cluster, calm, [first.sid, second.sid, sid])
        async with watch.watching():
            before = redis_traffic(own_redis.url)
            for i in range(40):
                assert await call(ws, 2000 + i, "identity-change", {"name": f"n{i}"}) == {
                    "ok": True
                }
                await asyncio.sleep(1 / 15)
            for peer in (first, second):
                await peer.wait_for(
                    "identity-change", lambda p: p.get("name") == "n39" and p["id_user"] == "3"
                )
            status, _, _ = await asyncio.to_thread(
                http, f"{cluster.url}/users/3", "PUT", {"name": "Renamed"}
            )
            assert status == 204
            for peer in (first, second):
                await peer.wait_for("identity-change", lambda p: p == {"id_user": "3"})
            sent_in, sent_out = traffic_since(own_redis.url, before)
        events = 40 + 1
        assert sent_in < events * MAX_ROOMS * BYTES_PER_ROOM, sent_in
        assert sent_out < events * MAX_ROOMS * BYTES_PER_ROOM, sent_out
        for peer in (first, second):
            got = [p["name"] for p in peer.payloads("identity-change") if "name" in p]
            assert got == [f"n{i}" for i in range(40)]  # none lost, in order
        before = redis_traffic(own_redis.url)
        await ws.close()
        for peer in (first, second):
            await peer.wait_for("socket-disconnected", lambda s: s == sid)
        sent_in, sent_out = traffic_since(own_redis.url, before)
        assert sent_in < MAX_ROOMS * BYTES_PER_ROOM, sent_in
        assert sent_out < MAX_ROOMS * BYTES_PER_ROOM, sent_out
    finally:
        await ws.close()
        await first.close()
        await second.close()


async def test_a_frame_flood_of_joins_and_leaves_is_cut_off_by_the_frame_budget(
    cluster: Cluster,
) -> None:
    """Joins and leaves sent as fast as a client can (each may subscribe a Redis group)
    are frames like any other: past SOCKETIO_FRAME_RATE's burst the client gets an `error`
    event and is disconnected, and its rooms are left."""
    rooms = many_rooms(50)
    ws, sid, _ = await socketio_connect(cluster, id_user="4")
    frames = []
    for i in range(400):
        action = "join" if i % 2 == 0 else "leave"
        frames.append(f'42["{action}","{rooms[(i // 2) % len(rooms)]}"]')
    await flood(ws, frames)  # the server closes it mid-flood
    received = await closed_by_server(ws, within=5)
    assert any("too many frames: disconnecting" in str(frame) for frame in received), received
    for room in rooms:
        assert all(e["id_socket"] != sid for e in http(f"{cluster.url}/{room}/users")[2])
