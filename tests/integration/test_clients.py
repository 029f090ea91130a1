"""The official clients, unchanged, against a real cluster: python-socketio and socket.io-client.

Each test uses rooms of its own (a uuid suffix), so tests sharing the 2-worker cluster cannot
see each other's sockets.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import socketio

from tests.integration.recording import WEBSOCKET_ONLY, Client
from tests.integration.servers import ROOT, Cluster
from tests.integration.wire import roster, rosters_empty

pytestmark = pytest.mark.integration

SCENARIO_JS = Path(__file__).parent / "js" / "scenario.js"
NODE = shutil.which("node")
needs_node = pytest.mark.skipif(
    NODE is None or not (ROOT / "node_modules" / "socket.io-client").is_dir(),
    reason="node or node_modules/socket.io-client missing (npm ci)",
)


def new_room(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex[:8]}"


async def live_procids(cluster: Cluster) -> set[str]:
    return {w["procid"] for w in await asyncio.to_thread(cluster.live_workers)}


# ---- python-socketio -------------------------------------------------------------------


async def test_python_socketio_full_scenario(shared_cluster: Cluster) -> None:
    """python-socketio connects with the room in the query or in auth, gets handshake, joins
    with an ack, sees the other socket arrive and leave, and receives identity-change once,
    stamped with the sender's real id_user."""
    room, other = new_room("py"), new_room("py-other")
    a = await Client().open(f"{shared_cluster.url}?id_user=1&room={room}")
    b = Client()
    try:
        await b.open(shared_cluster.url, auth={"id_user": "2", "room": room})
        procids = await live_procids(shared_cluster)
        for client in (a, b):
            handshake = await client.next("handshake")
            assert set(handshake) == {"procid"} and handshake["procid"] in procids
        assert a.sid != b.sid
        assert a.sid != a.sio.eio.sid  # the Socket.IO id, not the Engine.IO one

        assert await a.next("socket-connected") == b.sid  # b arrived in a's room
        assert sorted(
            (e["id_socket"], e["id_user"]) for e in await roster(shared_cluster, room)
        ) == sorted([(a.sid, "1"), (b.sid, "2")])

        assert await b.call("join", other) == {"ok": True}
        assert await a.call("join", other) == {"ok": True}
        assert await b.next("socket-connected") == a.sid  # a arrived in b's other room
        assert await a.call("join", "") == {"ok": False, "error": "room must be a non-empty string"}

        # Both share two rooms: the relay reaches b once, and never echoes to the sender.
        await a.sio.emit("identity-change", {"name": "Johnny", "id_user": "7"})
        assert await b.next("identity-change") == {"name": "Johnny", "id_user": "1"}
        await b.sio.emit("identity-change", {"name": "Maria", "id_user": "1"})
        assert await a.next("identity-change") == {"name": "Maria", "id_user": "2"}
        # Markers sent after to both rooms: one Redis, one subscriber connection per worker,
        # so a second copy of Johnny or Maria would arrive before the marker does.
        await a.sio.emit("identity-change", {"name": "marker-a"})
        assert await b.next("identity-change") == {"name": "marker-a", "id_user": "1"}
        await b.sio.emit("identity-change", {"name": "marker-b"})
        assert await a.next("identity-change") == {"name": "marker-b", "id_user": "2"}

        b_sid = b.sid
        await b.close()
        assert await a.next("socket-disconnected") == b_sid
        # once, though in two rooms: the next departure a hears of is a marker's
        marker = await Client().open(f"{shared_cluster.url}?id_user=3&room={room}")
        assert await marker.call("join", other) == {"ok": True}
        marker_sid = marker.sid
        await marker.close()
        assert await a.next("socket-disconnected") == marker_sid
        assert [e["id_socket"] for e in await roster(shared_cluster, room)] == [a.sid]
    finally:
        await a.close()
        await b.close()
    await rosters_empty(shared_cluster, [room, other])


@pytest.mark.parametrize(
    ("query", "auth", "shown"),
    [
        ("?id_user=999", None, "Unknown id_user: 999"),
        ("?id_user=abc", None, "Unknown id_user: abc"),
        ("?id_user=1", {"id_user": "0"}, "Unknown id_user: 0"),  # auth wins over the query
        ("", {"room": "x"}, "Missing id_user"),
    ],
)
async def test_python_socketio_refused_user_sees_our_message(
    shared_cluster: Cluster, query: str, auth: dict[str, Any] | None, shown: str
) -> None:
    """An unknown or missing id_user makes connect() raise ConnectionError, the client's
    connect_error handler gets our CONNECT_ERROR message, and no socket is registered."""
    room = new_room("refused")
    client = Client()
    sep = "&" if query else "?"
    with pytest.raises(socketio.exceptions.ConnectionError):
        await client.open(f"{shared_cluster.url}{query}{sep}room={room}", auth=auth)
    try:
        assert client.connect_errors == [{"message": shown}]
        assert not client.sio.connected
        assert await roster(shared_cluster, room) == []
    finally:
        await client.close()


# ---- socket.io-client (Node) ----------------------------------------------------------


async def run_node(*args: str, transports: str = "websocket") -> asyncio.subprocess.Process:
    """js/scenario.js in its own process; it prints JSON lines on stdout. `transports` is
    its SCENARIO_TRANSPORTS: websocket, polling, or default (the client's own defaults)."""
    assert NODE is not None
    return await asyncio.create_subprocess_exec(
        NODE, str(SCENARIO_JS), *args,
        cwd=ROOT,  # resolves require('socket.io-client') from ROOT/node_modules
        env={**os.environ, "SCENARIO_TRANSPORTS": transports},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip


async def node_lines(process: asyncio.subprocess.Process, within: float = 30) -> list[Any]:
    """The JSON lines the script printed; it must exit with 0 within `within` seconds."""
    try:
        out, err = await asyncio.wait_for(process.communicate(), within)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode == 0, (process.returncode, out.decode(), err.decode())
    return [json.loads(line) for line in out.decode().splitlines() if line.strip()]


@needs_node
async def test_node_socketio_client_full_scenario(shared_cluster: Cluster) -> None:
    """socket.io-client 4.x with transports ['websocket'] runs the same scenario: query and
    auth connects, handshake, join acks, socket-connected / socket-disconnected with the
    socket ids the client shows as socket.id, stamped identity-change, and connect_error
    carrying our message for an unknown id_user."""
    room = new_room("node")
    process = await run_node("scenario", shared_cluster.url, room)
    (result,) = await node_lines(process)
    await check_scenario(shared_cluster, result)
    await rosters_empty(shared_cluster, [room, room + "-other"])


async def check_scenario(cluster: Cluster, result: dict[str, Any]) -> None:
    """What js/scenario.js's "scenario" mode must have seen: both handshakes name live
    workers, each socket saw the other arrive under the id it shows, join acks, stamped
    identity-changes, b's departure, and our message for an unknown id_user."""
    assert result["error"] is None, result
    procids = await live_procids(cluster)
    a, b = result["a"], result["b"]
    assert {a["handshake"]["procid"], b["handshake"]["procid"]} <= procids
    assert a["id"] != b["id"]
    assert a["connected"] == [b["id"]]
    assert b["connected"] == [a["id"]]
    assert a["joinAck"] == b["joinAck"] == {"ok": True}
    assert b["identity"] == [{"name": "Johnny", "id_user": "1"}]
    assert a["identity"] == [{"name": "Maria", "id_user": "2"}]
    assert a["disconnected"] == [b["id"]]
    assert result["refused"] == {"message": "Unknown id_user: 999", "connected": False}


@contextlib.asynccontextmanager
async def python_beside_node(
    cluster: Cluster,
    mode: str,
    room: str,
    transports: str = "websocket",
    py_transports: Sequence[str] | None = WEBSOCKET_ONLY,
) -> AsyncIterator[tuple[Client, asyncio.subprocess.Process, dict[str, Any]]]:
    """A python-socketio client (user 3, over `py_transports`) in `room`, then
    js/scenario.js in `mode` (user 4, over `transports`) once it printed that it is ready:
    (the client, the script, its ready line). Both are gone afterwards, and the room empty."""
    py = await Client().open(f"{cluster.url}?id_user=3&room={room}", transports=py_transports)
    process = await run_node(mode, cluster.url, room, transports=transports)
    try:
        assert process.stdout is not None
        ready = json.loads(await asyncio.wait_for(process.stdout.readline(), 15))
        assert ready["ready"] is True
        assert await py.next("socket-connected") == ready["id"]
        yield py, process, ready
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        await py.close()
    await rosters_empty(cluster, [room])


@needs_node
async def test_python_and_node_clients_see_each_other(shared_cluster: Cluster) -> None:
    """A python-socketio client and a socket.io-client in one room see each other arrive
    and each gets the other's identity-change, stamped with the sender's id_user."""
    async with python_beside_node(shared_cluster, "mixed", new_room("mixed")) as (py, node, ready):
        await py.sio.emit("identity-change", {"name": "from-python", "id_user": "9"})
        assert await py.next("identity-change") == {"name": "from-node", "id_user": "4"}
        (result,) = await node_lines(node)
        assert result["error"] is None, result
        assert result["identity"] == [{"name": "from-python", "id_user": "3"}]
        assert result["handshake"]["procid"] in await live_procids(shared_cluster)
        assert await py.next("socket-disconnected") == ready["id"]


@needs_node
async def test_binary_identity_change_between_python_and_node_clients(
    shared_cluster: Cluster,
) -> None:
    """Each official client emits an identity-change holding binary data (python-socketio:
    bytes, socket.io-client: a Buffer, each sent as a binary event with an attachment); the
    other receives it as binary data, stamped with the sender's id_user, through the bus."""
    async with python_beside_node(shared_cluster, "binary", new_room("binary")) as (py, node, _):
        await exchange_binary(py, node)


async def exchange_binary(py: Client, node: asyncio.subprocess.Process) -> dict[str, Any]:
    """The python client (user 3) and js/scenario.js's "binary" mode (user 4) exchange an
    identity-change holding bytes and a Buffer, each stamped with its sender's id_user;
    the script's result."""
    result: dict[str, Any]
    await py.sio.emit("identity-change", {"name": "from-python", "avatar": b"\x00\x01\xfe\xff"})
    assert await py.next("identity-change") == {
        "name": "from-node",
        "avatar": b"\x00\x01\x02\xff",
        "id_user": "4",
    }
    [result] = await node_lines(node)
    assert result["error"] is None, result
    buffer = {"type": "Buffer", "data": [0, 1, 254, 255]}  # a Buffer's JSON form
    assert result["identity"] == [{"name": "from-python", "avatar": buffer, "id_user": "3"}]
    return result
