"""Raw-frame abuse against one worker: each bad connection is closed, the worker is not.

After every test: the same worker process is still serving (no crash, no restart, no
traceback in its log), a fresh python-socketio client connects and works, GET /workers
counts only the live test client, and the rosters of the rooms used are empty.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from tests.integration.conftest import module_cluster
from tests.integration.recording import Client
from tests.integration.servers import Cluster, RedisServer
from tests.integration.wire import (
    closed_by_server,
    engineio_open,
    events_then_marker,
    eventually,
    flood,
    open_raw,
    recv,
    recv_packet,
    rosters_empty,
    socket_count,
    socketio_connect,
    socketio_url,
)

pytestmark = [pytest.mark.integration, pytest.mark.daphne]

CONNECT_TIMEOUT_S = 1.5  # how long the server lets a connection go without CONNECT
MAX_PAYLOAD = 1_000_000  # daphne --websocket-max-message-size, the OPEN packet's maxPayload
FIRST_PIDS: dict[int, list[int]] = {}  # cluster port -> its worker pids when it started


@pytest.fixture(scope="module")
def target(
    redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    """One worker, abused by every test of this module."""
    clusters = module_cluster(
        1, redis_server, tmp_path_factory, SOCKETIO_CONNECT_TIMEOUT_S=str(CONNECT_TIMEOUT_S)
    )
    cluster = next(clusters)
    FIRST_PIDS[cluster.port] = cluster.children()
    yield cluster
    next(clusters, None)


def new_room(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex[:8]}"


async def assert_unharmed(cluster: Cluster, rooms: list[str]) -> None:
    """The worker survived, works for an official client, and holds no leftover socket."""
    assert cluster.children() == FIRST_PIDS[cluster.port]  # never crashed nor restarted
    workers = await asyncio.to_thread(cluster.live_workers)
    assert [w["pid"] for w in workers] == FIRST_PIDS[cluster.port]
    log = cluster.logs()
    assert "Traceback" not in log, log[-3000:]

    async def no_sockets() -> bool:
        return await socket_count(cluster) == 0

    assert await eventually(no_sockets), await asyncio.to_thread(cluster.live_workers)
    await rosters_empty(cluster, rooms)

    room = new_room("fresh")
    client = await Client().open(f"{cluster.url}?id_user=5&room={room}")
    try:
        assert set(await client.next("handshake")) == {"procid"}
        assert await client.call("join", room + "-2") == {"ok": True}
        assert await socket_count(cluster) == 1  # the fresh client, and nothing else
    finally:
        await client.close()
    assert await eventually(no_sockets)
    await rosters_empty(cluster, [room, room + "-2"])


# Each closes the connection that sends it, before or after its CONNECT.
GARBAGE = [
    "",
    "x",
    "9",
    "💥",
    "\x00",
    "0",
    '0{"sid":"x","upgrades":[],"pingInterval":1,"pingTimeout":1,"maxPayload":1}',
    "1junk",
    "4",
    "47",
    "4/",
    "4/x",
    "40[1]",
    '40"auth"',
    "40{",
    "41{}",
    "42",
    "42[",
    '42["a"',
    "42[1",
    '42["connect"]',
    '42["disconnect"]',
    "42[null]",
    "42[{}]",
    "42[true]",
    "42" + "[" * 40 + '"deep"' + "]" * 40,
    '42["x",' + '{"a":' * 40 + "1" + "}" * 40 + "]",
    '4212345678901["x"]',
    '42["x"]junk',
    "42[NaN]",
    '42["x",Infinity]',
    '42["x",1e999]',
    "43[]",
    "43abc",
    "44",
    '44{"message":1}',
    "45",
    "46",
    '451-["x",{"_placeholder":true,"num":0}]',
]


@pytest.mark.parametrize("before_connect", [False, True], ids=["connected", "unconnected"])
async def test_garbage_text_frames(target: Cluster, before_connect: bool) -> None:
    """Malformed, truncated, reserved, over-deep and misplaced frames each close their own
    connection (a malformed CONNECT after a CONNECT_ERROR saying why), and nothing queued
    behind the bad frame is served: a CONNECT sent right after
    it registers no socket. An observer in the same room sees each connected one leave once
    and sees no other socket come or go."""
    room = new_room("garbage")
    observer, _, _ = await socketio_connect(target, id_user="9", room=room)

    async def abuse(frame: str) -> tuple[str, str | None, list[str | bytes] | None]:
        if before_connect:
            ws, _ = await engineio_open(target, id_user="1", room=room)
            sid = None
        else:
            ws, sid, _ = await socketio_connect(target, id_user="1", room=room)
        try:
            with contextlib.suppress(ConnectionClosed):
                await ws.send(frame)
                await ws.send("40")  # already queued when the server reads the bad frame
            return frame, sid, await closed_by_server(ws, within=10)
        except TimeoutError:
            return frame, sid, None
        finally:
            await ws.close()

    try:
        results = await asyncio.gather(*(abuse(frame) for frame in GARBAGE))
        assert [frame for frame, _, after in results if after is None] == []
        replies = [
            (frame, f) for frame, _, after in results for f in after or [] if f[:2] in ("40", "44")
        ]
        # not even a CONNECT reply for the queued "40"; a malformed CONNECT of an
        # unconnected client is told why it is closed
        refused = [
            (frame, f)
            for frame, f in replies
            if before_connect and frame.startswith("40") and f[:2] == "44"
            and str(f).endswith(': disconnecting"}')
        ]  # fmt: skip
        assert [r for r in replies if r not in refused] == []
        sids = [] if before_connect else [sid for _, sid, _ in results]
        expected = [
            [kind, sid] for sid in sids for kind in ("socket-connected", "socket-disconnected")
        ]
        events = await events_then_marker(target, observer, room, expected)
        assert sorted(events) == sorted(expected)
        await observer.send('421["join","still-fine"]')
        assert await recv_packet(observer) == '431[{"ok":true}]'
    finally:
        await observer.close()
    await assert_unharmed(target, [room])


async def test_invalid_utf8_and_binary_frames(target: Cluster) -> None:
    """A text frame that is not UTF-8 and binary frames (before or after CONNECT) close
    their connection."""
    room = new_room("binary")
    frames: list[tuple[bytes, bool]] = [
        (b'42["x\xff\xfe"]', True),  # text frame, invalid UTF-8
        (b"\x04hello", False),
        (b"", False),
        (bytes(range(256)), False),
    ]
    for data, as_text in frames:
        for connect in (False, True):
            if connect:
                ws, _, _ = await socketio_connect(target, id_user="2", room=room)
            else:
                ws, _ = await engineio_open(target, id_user="2", room=room)
            try:
                await ws.send(data, text=as_text)
                await closed_by_server(ws, within=10)
            finally:
                await ws.close()
    await assert_unharmed(target, [room])


async def test_oversized_frame_closes_but_large_one_is_served(target: Cluster) -> None:
    """A 2 MB text frame, over maxPayload, closes the connection (autobahn fails it with
    1009, message too big, and drops the TCP connection, which the client may see as 1006);
    a 0.99 MB frame under it is served."""
    room = new_room("big")
    ws, _, _ = await socketio_connect(target, id_user="3", room=room)
    try:
        name = "x" * (MAX_PAYLOAD - 10_000)
        await ws.send('421["identity-change",{"name":"' + name + '"}]')
        assert await recv_packet(ws) == '431[{"ok":true}]'
        with contextlib.suppress(ConnectionClosed):  # the server may drop us mid-frame
            await ws.send('42["identity-change",{"name":"' + "y" * 2_000_000 + '"}]')
            await closed_by_server(ws, within=5)
        assert ws.close_code in (1009, 1006), (ws.close_code, ws.close_reason)
    finally:
        await ws.close()
    await assert_unharmed(target, [room])


async def test_connect_flood(target: Cluster) -> None:
    """Many CONNECTs on one connection: the first connects, the second is a protocol error
    that closes the connection, and the CONNECTs queued behind it are dropped: the room sees
    exactly one socket come and go, no ghost sockets registered on the closed connection."""
    room = new_room("flood")
    observer, _, _ = await socketio_connect(target, id_user="9", room=room)
    ws, _ = await engineio_open(target, id_user="4", room=room)
    try:
        await flood(ws, ["40"] * 200)
        frames = await closed_by_server(ws, within=5)
        connects = [f for f in frames if isinstance(f, str) and f.startswith("40")]
        assert len(connects) == 1, frames[:5]
        sid = json.loads(connects[0][2:])["sid"]
        expected = [["socket-connected", sid], ["socket-disconnected", sid]]
        events = await events_then_marker(target, observer, room, expected)
        assert events == expected, events[:6]
    finally:
        await ws.close()
        await observer.close()
    await assert_unharmed(target, [room])


async def test_refused_connect_flood_registers_nothing(target: Cluster) -> None:
    """CONNECTs refused for an unknown id_user, however many, register no socket: after
    SOCKETIO_MAX_CONNECT_ATTEMPTS (3) refusals the connection itself is closed."""
    ws, _ = await engineio_open(target)
    try:
        await flood(ws, ("40" + json.dumps({"id_user": str(1000 + i)}) for i in range(100)))
        replies = [await recv_packet(ws) for _ in range(3)]
        assert replies == [f'44{{"message":"Unknown id_user: {1000 + i}"}}' for i in range(3)]
        assert await closed_by_server(ws) == []
        assert await socket_count(target) == 0
    finally:
        await ws.close()
    await assert_unharmed(target, [])


async def cycle(cluster: Cluster, i: int, rooms: list[str]) -> None:
    """One short-lived connection, closed (or dropped) at a different moment by `i % 7`."""
    url = socketio_url(cluster, id_user=str(i % 10 + 1), room=rooms[i % len(rooms)])
    kind = i % 7
    ws: ClientConnection = await open_raw(url)
    try:
        if kind == 0:  # closed before even reading OPEN
            return
        await recv(ws)
        if kind == 1:  # closed before CONNECT
            return
        await ws.send("40")
        if kind == 2:  # closed right after CONNECT, reply unread
            return
        if kind == 3:  # TCP dropped right after CONNECT, no close frame
            ws.transport.abort()
            return
        assert (await recv_packet(ws)).startswith('40{"sid":')
        if kind == 4:  # TCP dropped while connected
            ws.transport.abort()
            return
        if kind == 5:  # leaves with DISCONNECT
            await ws.send("41")
            return
        await ws.send('421["join","cycle-extra"]')  # kind 6: closed with an ack in flight
    finally:
        await ws.close()


async def test_rapid_open_close_cycles(target: Cluster) -> None:
    """200 connections opened and closed or dropped at every stage, 20 at a time, leave
    no socket behind in the worker or in any roster."""
    rooms = [new_room("cycle") for _ in range(4)]
    limit = asyncio.Semaphore(20)
    order = list(range(200))
    random.Random(4).shuffle(order)

    async def limited(i: int) -> None:
        async with limit:
            await cycle(target, i, rooms)

    await asyncio.gather(*(limited(i) for i in order))
    await assert_unharmed(target, [*rooms, "cycle-extra"])


async def test_connections_without_connect_are_dropped(target: Cluster) -> None:
    """100 connections that never send CONNECT hold no socket, and the server closes each
    of them SOCKETIO_CONNECT_TIMEOUT_S after it opened."""
    loop = asyncio.get_running_loop()
    sockets = await asyncio.gather(*(engineio_open(target, id_user="6") for _ in range(100)))
    opened = loop.time()
    try:
        assert await socket_count(target) == 0
        results: list[Any] = await asyncio.gather(
            *(closed_by_server(ws, within=CONNECT_TIMEOUT_S + 5) for ws, _ in sockets),
            return_exceptions=True,
        )
        closed = loop.time()
        assert [r for r in results if isinstance(r, BaseException)] == []
        assert all(frames == [] for frames in results)  # no ping yet, and nothing else
        # the last socket opened just before `opened`, each was due CONNECT_TIMEOUT_S after it
        assert closed - opened > CONNECT_TIMEOUT_S - 0.5, closed - opened
        assert closed - opened < CONNECT_TIMEOUT_S + 3, closed - opened
    finally:
        for ws, _ in sockets:
            await ws.close()
    await assert_unharmed(target, [])
