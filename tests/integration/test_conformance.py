"""The WebSocket cases of the socket.io-protocol conformance suite, in raw frames.

Ported from socketio/socket.io-protocol `test-suite/test-suite.js` (and the Engine.IO v4 spec):
the cases that apply to a WebSocket-only server speaking EIO=4. The long-polling cases become
HTTP 400 refusals, as the reference server answers them; custom namespaces are refused.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator

import pytest
from websockets.exceptions import InvalidStatus

from tests.integration.conftest import module_cluster
from tests.integration.servers import Cluster, RedisServer, http
from tests.integration.wire import (
    OPEN_KEYS,
    closed_by_server,
    engineio_open,
    open_raw,
    recv,
    recv_packet,
    roster,
    rosters_empty,
    socketio_connect,
    socketio_url,
    wait_events,
)

pytestmark = [pytest.mark.integration, pytest.mark.daphne]

# The suite's own pingInterval (test-suite.js: PING_INTERVAL = 300). Its PING_TIMEOUT of
# 200 ms leaves a client no room for one scheduling stall of a busy machine; 1 s does.
PING_INTERVAL_MS = 300
PING_TIMEOUT_MS = 1000


@pytest.fixture(scope="module")
def fast_heartbeat(
    redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    """A 1-worker cluster pinging every 300 ms and waiting 200 ms for the pong."""
    yield from module_cluster(
        1,
        redis_server,
        tmp_path_factory,
        SOCKETIO_PING_INTERVAL_MS=str(PING_INTERVAL_MS),
        SOCKETIO_PING_TIMEOUT_MS=str(PING_TIMEOUT_MS),
    )


def new_room() -> str:
    return f"conf-{uuid.uuid4().hex[:8]}"


# ---- Engine.IO handshake ---------------------------------------------------------------


async def test_open_packet_comes_first(shared_cluster: Cluster) -> None:
    """The first frame is OPEN `0{...}`: a string sid, no upgrades, the default heartbeat
    and maxPayload, and nothing else."""
    ws, payload = await engineio_open(shared_cluster)
    try:
        assert set(payload) == OPEN_KEYS
        assert isinstance(payload["sid"], str) and payload["sid"]
        assert payload["upgrades"] == []
        assert (payload["pingInterval"], payload["pingTimeout"]) == (25000, 20000)
        assert payload["maxPayload"] == 1_000_000
    finally:
        await ws.close()


async def test_open_packet_carries_configured_heartbeat(fast_heartbeat: Cluster) -> None:
    """SOCKETIO_PING_INTERVAL_MS / SOCKETIO_PING_TIMEOUT_MS show up in the OPEN packet."""
    ws, payload = await engineio_open(fast_heartbeat)
    await ws.close()
    assert (payload["pingInterval"], payload["pingTimeout"]) == (PING_INTERVAL_MS, PING_TIMEOUT_MS)
    assert type(payload["pingInterval"]) is int and type(payload["maxPayload"]) is int


async def test_each_connection_gets_its_own_engine_sid(shared_cluster: Cluster) -> None:
    """Two connections never share an Engine.IO sid."""
    (ws1, p1), (ws2, p2) = await asyncio.gather(
        engineio_open(shared_cluster), engineio_open(shared_cluster)
    )
    await ws1.close()
    await ws2.close()
    assert p1["sid"] != p2["sid"]


# ---- heartbeat --------------------------------------------------------------------------


async def test_answered_pings_keep_the_socket_open(fast_heartbeat: Cluster) -> None:
    """The server sends PING `2` every pingInterval; a client answering `3` stays connected
    over more than three intervals, and the socket still works afterwards."""
    ws, _sid, _ = await socketio_connect(fast_heartbeat, id_user="1")
    try:
        pings, started = 0, time.monotonic()
        while time.monotonic() - started < 4 * PING_INTERVAL_MS / 1000 + 0.2:
            frame = await recv(ws, 2)  # a dropped connection raises ConnectionClosed here
            assert frame == "2", frame
            pings += 1
            await ws.send("3")
        assert pings >= 3
        await ws.send('421["join","still-here"]')
        assert await recv_packet(ws) == '431[{"ok":true}]'
    finally:
        await ws.close()


async def test_ping_interval_is_respected(fast_heartbeat: Cluster) -> None:
    """PINGs come about every pingInterval, not in bursts and not late."""
    interval = PING_INTERVAL_MS / 1000
    ws, _ = await engineio_open(fast_heartbeat)
    try:
        stamps = []
        for _ in range(6):
            assert await recv(ws, 2) == "2"
            stamps.append(time.monotonic())
            await ws.send("3")
        gaps = sorted(b - a for a, b in zip(stamps, stamps[1:], strict=False))
        # The next PING is scheduled pingInterval after the PONG arrives, so no gap can be
        # shorter, whatever the machine does (a burst would be). A stall of this busy
        # machine lengthens one gap, not most: the median says "not late".
        assert gaps[0] > 0.9 * interval, gaps
        assert gaps[len(gaps) // 2] < 2 * interval, gaps
    finally:
        await ws.close()


@pytest.mark.parametrize("connect", [False, True], ids=["engineio-only", "socketio-connected"])
async def test_silent_client_is_closed_after_ping_timeout(
    fast_heartbeat: Cluster, connect: bool
) -> None:
    """A client that never answers PING is closed about pingInterval + pingTimeout after
    the last pong (here: after the OPEN), and its socket leaves the room."""
    room = new_room()
    started = time.monotonic()
    ws, _ = await engineio_open(fast_heartbeat, id_user="2", room=room)
    if connect:
        await ws.send("40")
    frames = await closed_by_server(ws, within=5)
    elapsed = time.monotonic() - started
    budget = (PING_INTERVAL_MS + PING_TIMEOUT_MS) / 1000
    assert budget - 0.1 < elapsed < budget + 4.0, elapsed  # the upper bound only says "closed"
    assert "2" in frames  # it was pinged, and did not answer
    await rosters_empty(fast_heartbeat, [room])


# ---- Socket.IO CONNECT ------------------------------------------------------------------


async def test_connect_to_main_namespace(shared_cluster: Cluster) -> None:
    """`40` gets `40{"sid": ...}` with a socket id that is not the Engine.IO sid, then the
    handshake event."""
    ws, opened = await engineio_open(shared_cluster, id_user="1")
    try:
        await ws.send("40")
        reply = await recv_packet(ws)
        assert reply.startswith("40{")
        body = json.loads(reply[2:])
        assert set(body) == {"sid"} and isinstance(body["sid"], str)
        assert body["sid"] != opened["sid"]
        name, data = json.loads((await recv_packet(ws))[2:])
        assert name == "handshake" and set(data) == {"procid"}
    finally:
        await ws.close()


async def test_connect_with_auth_payload(shared_cluster: Cluster) -> None:
    """`40{"id_user": ..., "room": ...}` connects with the auth payload alone."""
    room = new_room()
    ws, sid, _ = await socketio_connect(shared_cluster, auth={"id_user": "2", "room": room})
    try:
        assert [(e["id_socket"], e["id_user"]) for e in await roster(shared_cluster, room)] == [
            (sid, "2")
        ]
    finally:
        await ws.close()
    await rosters_empty(shared_cluster, [room])


async def test_unknown_namespace_is_refused(shared_cluster: Cluster) -> None:
    """`40/random` gets `44/random,{"message":"Invalid namespace"}`; the connection stays
    usable for the main namespace."""
    ws, _ = await engineio_open(shared_cluster, id_user="1")
    try:
        await ws.send("40/random")
        assert await recv_packet(ws) == '44/random,{"message":"Invalid namespace"}'
        await ws.send("40/custom,")
        assert await recv_packet(ws) == '44/custom,{"message":"Invalid namespace"}'
        await ws.send("40")
        assert (await recv_packet(ws)).startswith('40{"sid":')
    finally:
        await ws.close()


async def test_missing_user_gets_connect_error(shared_cluster: Cluster) -> None:
    """`40` without any id_user gets CONNECT_ERROR, and the connection may CONNECT again."""
    ws, _ = await engineio_open(shared_cluster)
    try:
        await ws.send("40")
        assert await recv_packet(ws) == '44{"message":"Missing id_user"}'
        await ws.send('40{"id_user":"999"}')
        assert await recv_packet(ws) == '44{"message":"Unknown id_user: 999"}'
        await ws.send('40{"id_user":"3"}')
        assert (await recv_packet(ws)).startswith('40{"sid":')
    finally:
        await ws.close()


# ---- invalid packets close the connection ----------------------------------------------


@pytest.mark.parametrize(
    "frame",
    ["4abc", "42{}", '42abc["message-with-ack",1]', "42[]", "5", "6", "45-[]", '451-["x",1]'],
)
async def test_invalid_packet_after_connect_closes(shared_cluster: Cluster, frame: str) -> None:
    """An invalid or unsupported packet from a connected socket closes its connection (and
    only that one): the socket leaves its room, whose other members see it go."""
    room = new_room()
    ws, sid, _ = await socketio_connect(shared_cluster, id_user="1", room=room)
    watcher, _, _ = await socketio_connect(shared_cluster, id_user="2", room=room)
    try:
        await ws.send(frame)
        await closed_by_server(ws, within=10)
        await wait_events(watcher, ["socket-disconnected", sid])
        await watcher.send('421["join","alive"]')
        assert await recv_packet(watcher) == '431[{"ok":true}]'
    finally:
        await ws.close()
        await watcher.close()
    await rosters_empty(shared_cluster, [room])


@pytest.mark.parametrize("frame", ["4abc", "42{}", '42["x"]', "41", "1"])
async def test_invalid_packet_before_connect_closes(shared_cluster: Cluster, frame: str) -> None:
    """Before CONNECT, a bad packet or an event closes the connection (`1` is the client's
    Engine.IO CLOSE: the server closes too)."""
    ws, _ = await engineio_open(shared_cluster, id_user="1")
    await ws.send(frame)
    frames = await closed_by_server(ws, within=10)
    assert not any(isinstance(f, str) and f.startswith("40") for f in frames)


async def test_disconnect_packet_disconnects(shared_cluster: Cluster) -> None:
    """`41` leaves the main namespace: the server closes the connection and the room's
    other members get socket-disconnected."""
    room = new_room()
    ws, sid, _ = await socketio_connect(shared_cluster, id_user="1", room=room)
    watcher, _, _ = await socketio_connect(shared_cluster, id_user="2", room=room)
    try:
        await ws.send("41")
        await closed_by_server(ws, within=10)
        await wait_events(watcher, ["socket-disconnected", sid])
    finally:
        await watcher.close()
    await rosters_empty(shared_cluster, [room])


async def test_event_with_ack_is_acknowledged(shared_cluster: Cluster) -> None:
    """`42<id>[...]` gets `43<id>[...]` with the same id; unknown events are refused in the
    ack rather than by closing."""
    ws, _, _ = await socketio_connect(shared_cluster, id_user="1")
    try:
        await ws.send('42456["join","acked"]')
        assert await recv_packet(ws) == '43456[{"ok":true}]'
        await ws.send('427["message-with-ack",1,"2",{"3":[false]}]')
        assert (
            await recv_packet(ws) == '437[{"ok":false,"error":"unknown event: message-with-ack"}]'
        )
        await ws.send('42["leave","acked"]')  # no ack id: no ACK comes back
        await ws.send('428["leave","acked"]')
        assert await recv_packet(ws) == '438[{"ok":true}]'
    finally:
        await ws.close()


# ---- HTTP and WebSocket refusals -------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "method", "body"),
    [
        ("EIO=4&transport=polling", "POST", {"code": 2, "message": "Bad handshake method"}),
        ("EIO=4&transport=polling", "PUT", {"code": 2, "message": "Bad handshake method"}),
        ("EIO=4&transport=websocket", "GET", {"code": 3, "message": "Bad request"}),
        ("EIO=4", "GET", {"code": 0, "message": "Transport unknown"}),
        ("EIO=4&transport=abc", "GET", {"code": 0, "message": "Transport unknown"}),
        (
            "EIO=3&transport=websocket",
            "GET",
            {"code": 5, "message": "Unsupported protocol version"},
        ),
        (
            "EIO=abc&transport=websocket",
            "GET",
            {"code": 5, "message": "Unsupported protocol version"},
        ),
        ("transport=websocket", "GET", {"code": 5, "message": "Unsupported protocol version"}),
    ],
)
def test_plain_http_is_refused(
    shared_cluster: Cluster, query: str, method: str, body: dict
) -> None:
    """HTTP on /socket.io/ that opens no long-polling session (another method, an unknown
    transport, WebSocket without the Upgrade, an old client) gets 400 with the reference
    server's JSON error."""
    status, headers, got = http(f"{shared_cluster.url}/socket.io/?{query}", method)
    assert (status, got) == (400, body)
    assert headers["Content-Type"] == "application/json"


@pytest.mark.parametrize(
    "query",
    [{"EIO": "3"}, {"EIO": "abc"}, {"EIO": ""}, {"transport": "polling"}, {"transport": "abc"}],
)
async def test_websocket_upgrade_is_refused(shared_cluster: Cluster, query: dict) -> None:
    """A WebSocket upgrade for anything but EIO=4 & transport=websocket fails the handshake."""
    with pytest.raises(InvalidStatus) as refused:
        ws = await open_raw(socketio_url(shared_cluster, **query))
        await ws.close()
    assert refused.value.response.status_code == 403
