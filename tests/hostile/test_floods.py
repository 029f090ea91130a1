"""Floods from one client address: CONNECTs with unknown users, sockets, renames. Each is
bounded by its setting and answered with a clear refusal, while a client from another
address (127.0.0.2: Linux routes all of 127/8 to the loopback) is served as usual."""

from __future__ import annotations

import asyncio
import http.client
import json
import math
import time
import uuid
from collections.abc import Iterator

import pytest
from websockets.exceptions import InvalidStatus

from tests.hostile.harm import Unharmed, pair_on_two_workers
from tests.integration.conftest import module_cluster
from tests.integration.servers import Cluster, RedisServer
from tests.integration.wire import (
    closed_by_server,
    engineio_open,
    flood,
    open_raw,
    recv,
    socket_count,
    socketio_url,
)

MAX_CONNECTIONS = 20  # SOCKETIO_MAX_CONNECTIONS_PER_ADDRESS for this module's cluster
RENAMES_PER_MINUTE = 30  # HTTP_RENAMES_PER_MINUTE_PER_ADDRESS for this module's cluster
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
        SOCKETIO_MAX_CONNECTIONS_PER_ADDRESS=str(MAX_CONNECTIONS),
        HTTP_RENAMES_PER_MINUTE_PER_ADDRESS=str(RENAMES_PER_MINUTE),
    )


def put_name(
    cluster: Cluster, id_user: str, name: str, source: str = "127.0.0.1"
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection(
        "127.0.0.1", cluster.port, timeout=5, source_address=(source, 0)
    )
    try:
        conn.request(
            "PUT", f"/users/{id_user}", json.dumps({"name": name}),
            {"Content-Type": "application/json"},
        )  # fmt: skip
        response = conn.getresponse()
        return response.status, dict(response.headers), response.read()
    finally:
        conn.close()


async def test_a_flood_of_connects_with_unknown_users_is_closed_after_three(
    cluster: Cluster,
) -> None:
    """Ten connections each send 3,000 CONNECTs for unknown users at once: each gets three
    CONNECT_ERRORs naming the user and is closed; nothing is registered."""
    room = f"calm-{uuid.uuid4().hex[:8]}"
    first, second = await pair_on_two_workers(cluster, room)

    async def attacker(n: int) -> list[str | bytes]:
        ws, _ = await engineio_open(cluster)
        await flood(ws, (f'40{{"id_user":"{900000 + n * 3000 + i}"}}' for i in range(3000)))
        return await closed_by_server(ws, within=5)

    try:
        async with Unharmed(cluster, room, [first.sid, second.sid]).watching():
            received = await asyncio.gather(*(attacker(n) for n in range(10)))
        for n, frames in enumerate(received):
            assert [json.loads(str(f)[2:])["message"] for f in frames] == [
                f"Unknown id_user: {900000 + n * 3000 + i}" for i in range(3)
            ]
        assert await socket_count(cluster) == 2
    finally:
        await first.close()
        await second.close()


async def test_sockets_past_the_cap_per_address_are_refused(cluster: Cluster) -> None:
    """60 sockets from one address: each worker accepts MAX_CONNECTIONS of its share and
    refuses the rest with 403 at the handshake; a client from another address still
    connects; closing them frees the places."""
    room = f"calm-{uuid.uuid4().hex[:8]}"
    first, second = await pair_on_two_workers(cluster, room)  # 1 place on each worker
    held = []
    refused = 0
    try:
        async with Unharmed(cluster, room, [first.sid, second.sid]).watching():
            for _ in range(60):
                try:
                    held.append(await open_raw(socketio_url(cluster)))
                except InvalidStatus as exc:
                    assert exc.response.status_code == 403
                    refused += 1
            assert len(held) <= WORKERS * MAX_CONNECTIONS - 2
            assert refused >= 60 - (WORKERS * MAX_CONNECTIONS - 2)
            other = await open_raw(socketio_url(cluster), local_addr=(OTHER_ADDRESS, 0))
            assert str(await recv(other)).startswith("0{")
            await other.close()
    finally:
        await asyncio.gather(*(ws.close() for ws in held))
        await first.close()
        await second.close()
    ws = await open_raw(socketio_url(cluster))
    assert str(await recv(ws)).startswith("0{")
    await ws.close()


async def test_a_put_flood_gets_429_with_retry_after(cluster: Cluster) -> None:
    """200 renames from one address: at most RENAMES_PER_MINUTE per worker succeed, the
    rest get 429 JSON with Retry-After; another address renames meanwhile."""
    room = f"calm-{uuid.uuid4().hex[:8]}"
    first, second = await pair_on_two_workers(cluster, room)
    statuses: list[int] = []
    try:
        async with Unharmed(cluster, room, [first.sid, second.sid]).watching():
            started = time.monotonic()
            for i in range(200):
                status, headers, body = await asyncio.to_thread(put_name, cluster, "6", f"R{i}")
                statuses.append(status)
                if status == 429:
                    assert int(headers["Retry-After"]) >= 1
                    assert "Too many renames" in json.loads(body)["error"]
            refills = math.ceil((time.monotonic() - started) * RENAMES_PER_MINUTE / 60)
            status, _, _ = await asyncio.to_thread(put_name, cluster, "6", "Else", OTHER_ADDRESS)
            assert status == 204
        assert set(statuses) == {204, 429}
        assert statuses.count(204) <= WORKERS * (RENAMES_PER_MINUTE + refills)
        assert statuses.count(204) >= RENAMES_PER_MINUTE
    finally:
        await first.close()
        await second.close()
