"""The environment reaches a running worker: each variable of docs/configuration.md's
table set to a value of its own, and seen where a client sees it.

The defaults are tested where the behaviour is (test_conformance, test_wire_abuse,
test_edge); here every value differs from its default, so a worker that kept a default,
or read a setting at import time before the environment was applied, fails.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import pytest

from tests.integration.conftest import module_cluster
from tests.integration.servers import Cluster, RedisServer, http
from tests.integration.wire import closed_by_server, engineio_open, recv_packet, socketio_connect

pytestmark = [pytest.mark.integration, pytest.mark.daphne]

OVERRIDES = {
    "SOCKETIO_PING_INTERVAL_MS": "4321",
    "SOCKETIO_PING_TIMEOUT_MS": "1234",
    "SOCKETIO_MAX_PAYLOAD": "4096",
    "SOCKETIO_MAX_ROOMS_PER_SOCKET": "2",
    "HTTP_MAX_BODY_BYTES": "2048",
    "WORKER_GC_THRESHOLDS": "555,6,7",
}


@pytest.fixture(scope="module")
def overridden(
    redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    yield from module_cluster(1, redis_server, tmp_path_factory, **OVERRIDES)


async def test_open_packet_carries_the_configured_values(overridden: Cluster) -> None:
    """SOCKETIO_PING_INTERVAL_MS, SOCKETIO_PING_TIMEOUT_MS and SOCKETIO_MAX_PAYLOAD are what
    the OPEN packet announces."""
    ws, payload = await engineio_open(overridden)
    await ws.close()
    assert (payload["pingInterval"], payload["pingTimeout"], payload["maxPayload"]) == (
        4321,
        1234,
        4096,
    )


def relay(size: int) -> str:
    """An identity-change frame with an ack id, exactly `size` characters long."""
    head, tail = '421["identity-change",{"name":"', '"}]'
    return head + "x" * (size - len(head) - len(tail)) + tail


async def test_frames_over_the_configured_max_payload_close_the_connection(
    overridden: Cluster,
) -> None:
    """A frame of SOCKETIO_MAX_PAYLOAD characters is served; one character more closes the
    connection (daphne's message size limit, set by runcluster from the same setting)."""
    ws, _sid, _ = await socketio_connect(overridden, id_user="1")
    try:
        await ws.send(relay(4096))
        assert await recv_packet(ws) == '431[{"ok":true}]'
        await ws.send(relay(4097))
        await closed_by_server(ws, within=5)
    finally:
        await ws.close()


async def test_rooms_per_socket_follow_the_setting(overridden: Cluster) -> None:
    """SOCKETIO_MAX_ROOMS_PER_SOCKET=2: the second room is joined, the third refused."""
    ws, _sid, _ = await socketio_connect(overridden, id_user="2", room="env-a")
    try:
        await ws.send('421["join","env-b"]')
        assert await recv_packet(ws) == '431[{"ok":true}]'
        await ws.send('422["join","env-c"]')
        reply = await recv_packet(ws)
        assert reply.startswith("432[") and json.loads(reply[3:])[0]["ok"] is False, reply
    finally:
        await ws.close()


def test_request_bodies_follow_the_configured_cap(overridden: Cluster) -> None:
    """HTTP_MAX_BODY_BYTES=2048: a 3000-byte body is refused with 413 (the view's own cap
    is 64 KiB, so only the setting can refuse it); a small one is served."""
    big = {"name": "y" * 3000}
    assert http(f"{overridden.url}/users/4", "PUT", big)[0] == 413
    assert http(f"{overridden.url}/users/4", "PUT", {"name": "Frank"})[0] == 204


async def test_worker_gc_thresholds_follow_the_setting(overridden: Cluster) -> None:
    """WORKER_GC_THRESHOLDS is what the worker's collector runs with (/workers, DEBUG on)."""
    workers = await asyncio.to_thread(overridden.live_workers)
    assert [w["gc"]["thresholds"] for w in workers] == [[555, 6, 7]]
