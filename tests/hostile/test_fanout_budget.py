"""What one client may make the cluster carry: a socket's identity-changes cost their
frame's bytes times its rooms against SOCKETIO_FANOUT_BYTES_PER_SECOND (five 900 KB ones
in 100 rooms put 450 MB into Redis and 900 MB out of it in under a second), and a server
rename costs the room events it publishes against HTTP_RENAME_FANOUT_PER_MINUTE_PER_ADDRESS.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from tests.hostile.harm import (
    Unharmed,
    call,
    join_paced,
    pair_on_two_workers,
    redis_traffic,
    traffic_since,
)
from tests.integration.conftest import module_cluster
from tests.integration.recording import Client
from tests.integration.servers import Cluster, RedisServer, http
from tests.integration.wire import events_until_quiet, socketio_connect

ROOMS = 100  # SOCKETIO_MAX_ROOMS_PER_SOCKET's default
BIG = 900_000  # characters of one identity-change's name: 90 MB of room messages in 100 rooms
# Redis traffic the refused attack may cause, in each direction: what a few small events
# and the roster probes cost, far below one 900 KB frame in a single room.
TRAFFIC_BOUND = 2_000_000
# Room events per minute the renames from one address may cost, per worker: one rename of
# a user in 100 rooms passes on each worker, the next waits.
RENAME_FANOUT = 150
# What one room event of a rename costs Redis, in and out (as tests/hostile/test_rooms_flood).
BYTES_PER_ROOM = 1500


@pytest.fixture(scope="module")
def cluster(own_redis: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    env = {
        "HTTP_RENAME_FANOUT_PER_MINUTE_PER_ADDRESS": str(RENAME_FANOUT),
        # the frames' own byte rate would cut the attacker off at its second 900 KB frame:
        # raised so that the budget on what the frames cost the cluster is the one shown
        "SOCKETIO_BYTE_RATE": str(10 * BIG),
    }
    yield from module_cluster(2, own_redis, tmp_path_factory, **env)


def rooms_named(count: int) -> list[str]:
    tag = uuid.uuid4().hex[:8]
    return [f"fanout-{tag}-{i:03d}" for i in range(count)]


@asynccontextmanager
async def in_rooms_beside_a_pair(
    cluster: Cluster, id_user: str
) -> AsyncIterator[tuple[Any, Client, Client, Unharmed]]:
    """A socket of `id_user` in ROOMS rooms, one of them a well-behaved pair's on the two
    workers, and the Unharmed watch of that room; all three sockets closed on the way out."""
    calm = f"calm-{uuid.uuid4().hex[:8]}"
    first, second = await pair_on_two_workers(cluster, calm)
    ws, sid, _ = await socketio_connect(cluster, id_user=id_user)
    try:
        assert await join_paced(ws, [*rooms_named(ROOMS - 1), calm]) == [{"ok": True}] * ROOMS
        await events_until_quiet(ws, quiet=0.3)
        yield ws, first, second, Unharmed(cluster, calm, [first.sid, second.sid, sid])
    finally:
        await ws.close()
        await first.close()
        await second.close()


async def test_large_identity_changes_to_many_rooms_are_refused_and_never_reach_redis(
    cluster: Cluster, own_redis: RedisServer
) -> None:
    """A socket in 100 rooms (one of them the well-behaved pair's) sends five 900 KB
    identity-changes: each is dropped with an `error` event and an ack {"ok": false}
    naming the fan-out budget, Redis moves less than TRAFFIC_BOUND either way, and a small
    identity-change afterwards still reaches the pair."""
    async with in_rooms_beside_a_pair(cluster, "3") as (ws, first, second, watch):
        async with watch.watching():
            before = redis_traffic(own_redis.url)
            refusal = {
                "ok": False,
                "error": "identity-change fan-out budget exceeded: event dropped",
            }
            for i in range(5):
                reply = await call(ws, 100 + i, "identity-change", {"name": "x" * BIG}, within=15)
                assert reply == refusal
                await asyncio.sleep(0.25)  # within the identity-change rate
            sent_in, sent_out = traffic_since(own_redis.url, before)
            assert await call(ws, 200, "identity-change", {"name": "small"}) == {"ok": True}
            for peer in (first, second):
                await peer.wait_for("identity-change", lambda p: p.get("name") == "small")
        assert sent_in < TRAFFIC_BOUND, sent_in
        assert sent_out < TRAFFIC_BOUND, sent_out
        for peer in (first, second):
            assert [p["name"] for p in peer.payloads("identity-change")] == ["small"]


async def test_renames_of_a_user_in_many_rooms_are_bounded_per_address(
    cluster: Cluster, own_redis: RedisServer
) -> None:
    """A user with a socket in 100 rooms, renamed six times from one address with 150 room
    events a minute per worker: at most one rename per worker passes, the others get 429
    with Retry-After and a JSON error, and Redis carries at most two renames' room events.
    The pair in one of the rooms hears the rename that passed."""
    async with in_rooms_beside_a_pair(cluster, "4") as (ws, first, second, watch):
        async with watch.watching():
            before = redis_traffic(own_redis.url)
            answers = []
            for i in range(6):
                answers.append(
                    await asyncio.to_thread(
                        http, f"{cluster.url}/users/4", "PUT", {"name": f"Big {i}"}
                    )
                )
            accepted = [status for status, _, _ in answers if status == 204]
            refused = [(headers, body) for status, headers, body in answers if status == 429]
            assert 1 <= len(accepted) <= 2 and len(accepted) + len(refused) == 6, answers
            for headers, body in refused:
                assert int(headers["Retry-After"]) > 0
                assert "too many room events" in body["error"]
            for peer in (first, second):
                await peer.wait_for("identity-change", lambda p: p == {"id_user": "4"})
            sent_in, sent_out = traffic_since(own_redis.url, before)
        assert sent_in < 2 * ROOMS * BYTES_PER_ROOM, sent_in
        assert sent_out < 2 * 2 * ROOMS * BYTES_PER_ROOM, sent_out  # to both workers
