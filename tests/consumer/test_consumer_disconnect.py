"""How sockets leave: every way a connection ends tells its rooms once and unregisters it;
the Engine.IO heartbeat; the worker node's roster of its sockets."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from pytest_django.fixtures import Settings

from rooms.cluster.node import WorkerNode
from rooms.socketio.consumer import OPEN_CONNECTIONS, scope_address
from tests.consumer.conftest import (
    FRAME_TIMEOUT,
    Client,
    ClientFactory,
    expect,
    quiet,
    socket_path,
)

pytestmark = pytest.mark.django_db(transaction=True)


async def two_rooms_with_a_leaver(
    connect: ClientFactory, before_leaver: Callable[[], None] = lambda: None
) -> tuple[Client, list[Client]]:
    """A socket in Maths and Physics, and one watcher in Maths, Physics and both.

    `before_leaver` runs after the watchers connected, e.g. to change settings for the leaver.
    """
    maths = await connect(id_user="2", room="Maths")
    physics = await connect(id_user="3", room="Physics")
    both = await connect(id_user="4", room="Maths")
    assert await both.call("join", "Physics") == {"ok": True}
    await expect(maths, "socket-connected", both.sid)
    await expect(physics, "socket-connected", both.sid)
    before_leaver()
    leaver = await connect(id_user="1", room="Maths")
    assert await leaver.call("join", "Physics") == {"ok": True}
    for watcher in (maths, physics, both):
        await expect(watcher, "socket-connected", leaver.sid)
    await expect(both, "socket-connected", leaver.sid)
    return leaver, [maths, physics, both]


async def assert_departed(node: WorkerNode, leaver: Client, watchers: list[Client]) -> None:
    """Each watcher got "socket-disconnected" <sid> exactly once; the node forgot the socket."""
    assert leaver.sid is not None
    # Read all watchers at once, so each answers its pings (if any) meanwhile.
    await asyncio.gather(*(expect(w, "socket-disconnected", leaver.sid) for w in watchers))
    await quiet(*watchers)
    assert node.registry.get(leaver.sid) is None
    for room in ("Maths", "Physics"):
        roster = await node.roster(room)
        assert leaver.sid not in {sid for sid, _, _ in roster.entries}
    assert len(node.registry) == len(watchers)


async def test_client_closing_the_websocket_tells_its_rooms_once(
    connect: ClientFactory, node: WorkerNode
) -> None:
    """When the client closes the WebSocket, its rooms get "socket-disconnected" once."""
    leaver, watchers = await two_rooms_with_a_leaver(connect)
    await leaver.finish()
    await assert_departed(node, leaver, watchers)


async def test_a_close_takes_no_thread_hop_to_close_database_connections(
    connect: ClientFactory, node: WorkerNode, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Channels' own websocket_disconnect runs `aclose_old_connections` on asgiref's thread
    for every close; this consumer's does not (it reaches the database only through
    `database_sync_to_async`, which does that itself)."""
    hops: list[str] = []

    async def record() -> None:
        hops.append("aclose_old_connections")

    monkeypatch.setattr("channels.generic.websocket.aclose_old_connections", record)
    leaver, watchers = await two_rooms_with_a_leaver(connect)
    await leaver.finish()
    await assert_departed(node, leaver, watchers)
    assert hops == []


async def test_an_instance_killed_while_it_waits_on_the_bus_still_releases_everything(
    connect: ClientFactory, node: WorkerNode, monkeypatch: pytest.MonkeyPatch
) -> None:
    """daphne cancels an application instance still running `application_close_timeout`
    after its client left, in whatever it awaits (here a join whose SUBSCRIBE never
    completes): its socket is unregistered, its rooms are told, and its address's count
    is released all the same."""
    watcher = await connect(id_user="2", room="Maths")
    leaver = await connect(id_user="1", room="Maths")
    await expect(watcher, "socket-connected", leaver.sid)
    address = scope_address(leaver.comm.scope)
    counted = OPEN_CONNECTIONS[address]
    never = asyncio.Event()

    async def subscribe_forever(group: str) -> None:
        await never.wait()

    monkeypatch.setattr(node.subscriber, "group_add", subscribe_forever)
    await leaver.send('42["join","Stuck"]')
    assert leaver.sid is not None
    for _ in range(100):  # until the join waits on the bus
        sock = node.registry.get(leaver.sid)
        if sock is not None and "Stuck" in sock.rooms:
            break
        await asyncio.sleep(0.01)
    leaver.comm.future.cancel()  # what daphne's application_checker does
    await asyncio.wait([leaver.comm.future], timeout=FRAME_TIMEOUT)
    assert node.registry.get(leaver.sid) is None
    assert not node.registry.has_room("Stuck")
    assert OPEN_CONNECTIONS[address] == counted - 1
    await expect(watcher, "socket-disconnected", leaver.sid)


async def test_socketio_disconnect_packet_tells_its_rooms_once(
    connect: ClientFactory, node: WorkerNode
) -> None:
    """A client "41" ends the socket: the server closes the WebSocket and tells its rooms."""
    leaver, watchers = await two_rooms_with_a_leaver(connect)
    await leaver.send("41")
    await leaver.assert_closed()
    await assert_departed(node, leaver, watchers)


async def test_engineio_close_packet_tells_its_rooms_once(
    connect: ClientFactory, node: WorkerNode
) -> None:
    """An Engine.IO CLOSE ("1") from the client ends the socket like a WebSocket close."""
    leaver, watchers = await two_rooms_with_a_leaver(connect)
    await leaver.send("1")
    await leaver.assert_closed()
    await assert_departed(node, leaver, watchers)


async def told_why_and_closed(client: Client) -> str:
    """The `error` event a connected socket gets before its connection is closed for a
    protocol error; returns its message."""
    event = await client.recv_event()
    assert event.name == "error", event
    [reason] = event.args
    assert reason["message"].endswith(": disconnecting"), reason
    await client.assert_closed()
    return str(reason["message"])


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        ("4abc", "unknown"),  # unknown Socket.IO packet type (socket.io-protocol test-suite)
        ("42{}", "array"),  # EVENT payload not an array (test-suite)
        ('42abc["x"]', "JSON"),  # junk where the ack id goes (test-suite)
        ("42[]", "array"),
        ('42["disconnect"]', "reserved"),  # reserved event name
        ("42[null]", "name"),
        ('451-["x",1]', "placeholders"),  # a BINARY_EVENT that places no attachment
        ("43", "id"),  # ACK without an id
        ("4", "packet"),
        ("9", "packet"),
        ("5", "UPGRADE"),  # Engine.IO UPGRADE belongs to polling
        (
            "42/admin,[" + '"x"]',
            "namespace /admin",
        ),  # EVENT on a namespace the socket is not connected to
        ("42" + "[" * 40 + "]" * 40, "deeper than 32"),  # nested deeper than the codec allows
        ('42["x",' + "[]," * 10_001 + "0]", "more than 10000 elements"),
    ],
)
async def test_protocol_error_closes_the_socket_and_tells_its_rooms(
    connect: ClientFactory, node: WorkerNode, frame: str, reason: str
) -> None:
    """An unparsable or unexpected packet closes that connection only, announcing it once;
    the client is told why first."""
    leaver, watchers = await two_rooms_with_a_leaver(connect)
    await leaver.send(frame)
    assert reason in await told_why_and_closed(leaver)
    await assert_departed(node, leaver, watchers)
    # The worker goes on serving the others.
    assert await watchers[0].call("join", "Chemistry") == {"ok": True}


async def test_binary_frame_closes_the_socket_and_tells_its_rooms(
    connect: ClientFactory, node: WorkerNode
) -> None:
    """A binary WebSocket frame that no binary packet announced is a protocol error: the
    connection is closed."""
    leaver, watchers = await two_rooms_with_a_leaver(connect)
    await leaver.comm.send_to(bytes_data=b"\x04binary")
    assert "no binary packet announced" in await told_why_and_closed(leaver)
    await assert_departed(node, leaver, watchers)


async def test_a_text_frame_among_a_binary_packets_attachments_closes_the_socket(
    connect: ClientFactory, node: WorkerNode
) -> None:
    """socket.io-parser refuses plain text while it reconstructs a packet, and so do we."""
    leaver, watchers = await two_rooms_with_a_leaver(connect)
    await leaver.send('452-["identity-change",{"a":{"_placeholder":true,"num":0},'
                      '"b":{"_placeholder":true,"num":1}}]')  # fmt: skip
    await leaver.comm.send_to(bytes_data=b"first")
    await leaver.send('42["join","Elsewhere"]')
    assert "binary attachment was expected" in await told_why_and_closed(leaver)
    await assert_departed(node, leaver, watchers)


async def test_binary_attachments_count_against_max_payload(
    settings: Settings, connect: ClientFactory, node: WorkerNode
) -> None:
    """A binary packet is one message: its head and attachments together stay within
    maxPayload, or the connection is closed."""
    settings.SOCKETIO_MAX_PAYLOAD = 1000
    leaver, watchers = await two_rooms_with_a_leaver(connect)
    await leaver.send('451-["identity-change",{"a":{"_placeholder":true,"num":0}}]')
    await leaver.comm.send_to(bytes_data=b"x" * 1000)
    assert "exceeds maxPayload 1000" in await told_why_and_closed(leaver)
    await assert_departed(node, leaver, watchers)


async def test_oversized_frame_closes_the_socket(
    settings: Settings, connect: ClientFactory, node: WorkerNode
) -> None:
    """A frame longer than maxPayload is a protocol error: the connection is closed."""
    settings.SOCKETIO_MAX_PAYLOAD = 100
    leaver, watchers = await two_rooms_with_a_leaver(connect)
    await leaver.emit("identity-change", {"name": "x" * 100})
    assert "100" in await told_why_and_closed(leaver)
    await assert_departed(node, leaver, watchers)


async def test_event_before_connect_closes_the_connection(
    raw_client: Callable[..., Client], node: WorkerNode
) -> None:
    """An EVENT before CONNECT is a protocol error; nothing was registered."""
    client = raw_client(socket_path(id_user="1", room="Maths"))
    await client.open()
    await client.send('421["join","Maths"]')
    await client.assert_closed()
    assert len(node.registry) == 0


# ---- heartbeat ----------------------------------------------------------------------------


@pytest.fixture
def fast_heartbeat(settings: Settings) -> None:
    settings.SOCKETIO_PING_INTERVAL_MS = 200
    settings.SOCKETIO_PING_TIMEOUT_MS = 600  # room for a scheduling stall of a busy machine


async def test_client_silent_past_ping_timeout_is_dropped_and_its_room_told(
    settings: Settings, connect: ClientFactory, node: WorkerNode
) -> None:
    """A client that does not pong within pingTimeout is dropped and its rooms told, once."""

    def fast_heartbeat_for_the_leaver_only() -> None:
        # Read when a socket's heartbeat starts: the watchers keep the slow default, so no
        # watcher can miss a ping of its own while the test waits on another socket.
        settings.SOCKETIO_PING_INTERVAL_MS = 200
        settings.SOCKETIO_PING_TIMEOUT_MS = 200

    leaver, watchers = await two_rooms_with_a_leaver(connect, fast_heartbeat_for_the_leaver_only)
    leaver.auto_pong = False
    assert await leaver.assert_closed() >= 1  # pinged, and dropped for not answering
    await assert_departed(node, leaver, watchers)
    for watcher in watchers:
        assert watcher.sid is not None and node.registry.get(watcher.sid) is not None


@pytest.mark.usefixtures("fast_heartbeat")
async def test_server_pings_and_pongs_keep_the_socket_alive(
    connect: ClientFactory, node: WorkerNode
) -> None:
    """The server sends "2" every pingInterval; answering "3" keeps the socket across many."""
    client = await connect(id_user="1", room="Maths")
    for _ in range(10):  # 10 x 200 ms: more than twice pingInterval + pingTimeout
        assert await client.recv_frame(within=2) == "2"
        await client.send("3")
    assert await client.call("join", "Physics") == {"ok": True}
    assert client.sid is not None
    sock = node.registry.get(client.sid)
    assert sock is not None and sock.rooms == {"Maths", "Physics"}


async def test_server_answers_a_client_ping_with_a_pong(connect: ClientFactory) -> None:
    """A client ping ("2probe") gets the matching pong ("3probe")."""
    client = await connect(id_user="1")
    await client.send("2probe")
    assert await client.recv_frame() == "3probe"


# ---- the node's view ----------------------------------------------------------------------


async def test_roster_lists_exactly_the_connected_sockets(
    connect: ClientFactory, node: WorkerNode
) -> None:
    """node.roster(room) lists each connected socket of the room once, as (id_socket, id_user);
    it is empty once they have all disconnected."""
    a = await connect(id_user="1", room="Maths")
    b = await connect(id_user="2", room="Maths")
    b_again = await connect(id_user="2", room="Maths")  # one user, two tabs: two entries
    c = await connect(id_user="3", room="Physics")
    lonely = await connect(id_user="4")

    roster = await node.roster("Maths")
    assert (roster.expected, roster.responded) == (1, 1)
    assert sorted((sid, uid) for sid, uid, _ in roster.entries) == sorted(
        [(a.sid, "1"), (b.sid, "2"), (b_again.sid, "2")]
    )
    assert {procid for *_, procid in roster.entries} == {node.procid}
    assert [(sid, uid) for sid, uid, _ in (await node.roster("Physics")).entries] == [(c.sid, "3")]
    assert (await node.roster("Nowhere")).entries == []

    for client in (a, b, b_again, c, lonely):
        await client.finish()
    assert (await node.roster("Maths")).entries == []
    assert (await node.roster("Physics")).entries == []
    assert len(node.registry) == 0
    assert node.registry.room_count == 0
