"""The Socket.IO consumer over the real ASGI stack: handshake, refusals, rooms and events."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest
from channels.db import database_sync_to_async
from pytest_django.fixtures import Settings

from rooms.cluster import events
from rooms.cluster.events import CLUSTER_GROUP
from rooms.cluster.known_users import KNOWN_USERS
from rooms.cluster.names import room_group
from rooms.cluster.node import WorkerNode
from rooms.metrics.series import REGISTRY
from rooms.socketio import codec
from tests.consumer.conftest import Client, ClientFactory, expect, quiet, socket_path
from users.models import PlaygroundUser

pytestmark = pytest.mark.django_db(transaction=True)


def counted(name: str, **labels: str) -> float:
    """This worker's identity_playground_<name>_total, as GET /metrics reports it."""
    value = REGISTRY.get_sample_value(f"identity_playground_{name}_total", labels)
    return value or 0.0


def limit_closes(reason: str) -> float:
    return counted("limit_closes", reason=reason)


async def roster_of(node: WorkerNode, room: str) -> list[tuple[str, str]]:
    return [(sid, uid) for sid, uid, _ in (await node.roster(room)).entries]


# ---- Engine.IO handshake ----------------------------------------------------------------


async def test_open_packet_carries_sid_and_configured_limits(
    settings: Settings, raw_client: Callable[..., Client]
) -> None:
    """The OPEN packet has an Engine.IO sid, no upgrades, and the configured heartbeat/payload."""
    settings.SOCKETIO_PING_INTERVAL_MS = 4321
    settings.SOCKETIO_PING_TIMEOUT_MS = 1234
    settings.SOCKETIO_MAX_PAYLOAD = 54321
    client = raw_client(socket_path(id_user="1"))
    connected, _ = await client.comm.connect()
    assert connected
    frame = await client.recv_frame()
    assert frame[0] == "0"
    fields = json.loads(frame[1:])
    assert set(fields) == {"sid", "upgrades", "pingInterval", "pingTimeout", "maxPayload"}
    assert isinstance(fields["sid"], str) and fields["sid"]
    assert fields["upgrades"] == []
    assert (fields["pingInterval"], fields["pingTimeout"], fields["maxPayload"]) == (
        4321,
        1234,
        54321,
    )
    # The Socket.IO socket id is a different id from the Engine.IO session id.
    assert await client.connect_namespace() != fields["sid"]


@pytest.mark.parametrize(
    "query",
    [
        {"EIO": "4", "transport": "polling"},
        {"EIO": "4", "transport": "flashsocket"},
        {"EIO": "4"},
        {"EIO": "3", "transport": "websocket"},
        {"EIO": "5", "transport": "websocket"},
        {"transport": "websocket"},
    ],
    ids=["polling", "unknown-transport", "no-transport", "EIO3", "EIO5", "no-EIO"],
)
async def test_websocket_other_than_eio4_is_closed_unaccepted(
    raw_client: Callable[..., Client], node: WorkerNode, query: dict[str, str]
) -> None:
    """Only EIO=4 over transport=websocket is accepted; anything else is closed at once."""
    client = raw_client("/socket.io/?" + "&".join(f"{k}={v}" for k, v in query.items()))
    connected, _code = await client.comm.connect()
    assert not connected
    assert len(node.registry) == 0


@pytest.mark.parametrize(
    ("origin", "accepted"),
    [
        (None, True),  # python-socketio, Node and mobile clients send no Origin
        (b"http://localhost:8000", True),
        (b"http://LOCALHOST:8000", True),  # host names are case-insensitive
        (b"http://localhost:9999", False),  # another port is another origin (RFC 6454)
        (b"http://localhost", False),
        (b"https://localhost:8000", False),  # another scheme, too
        (b"http://[::1]:8000", False),  # an allowed host, but not the one the page is on
        (b"http://evil.example", False),
        (b"http://localhost.evil.example:8000", False),
        (b"null", False),  # an opaque origin: a sandboxed frame or a file
        (b"localhost:8000", False),
    ],
)
async def test_origin_must_be_an_allowed_host_when_present(
    settings: Settings,
    raw_client: Callable[..., Client],
    origin: bytes | None,
    accepted: bool,
) -> None:
    """A browser's Origin must be the server's own (scheme, host and port, the host as the
    Host header names it) or a trusted one; a client sending no Origin is served."""
    settings.ALLOWED_HOSTS = ["localhost", "[::1]"]
    headers = [(b"host", b"localhost:8000")]
    headers += [] if origin is None else [(b"origin", origin)]
    client = raw_client(socket_path(id_user="1"), headers=headers)
    connected, _ = await client.comm.connect()
    assert connected is accepted
    if accepted:
        assert isinstance(await client.recv(), codec.Open)
        await client.connect_namespace()


# ---- CONNECT refusals -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "auth", "expected"),
    [
        ({}, None, "id_user"),
        ({"id_user": ""}, None, "id_user"),
        ({"id_user": "11"}, None, "11"),
        ({"id_user": "abc"}, None, "abc"),
        ({"id_user": "0"}, None, "0"),
        ({"id_user": "01"}, None, "01"),
        ({}, {"id_user": "abc"}, "abc"),
        ({}, {"id_user": 99}, "99"),
        ({"id_user": "1"}, {"id_user": "abc"}, "abc"),  # the auth payload wins, even when bad
        ({}, {"room": "Maths"}, "id_user"),
    ],
    ids=[
        "missing",
        "empty",
        "unknown",
        "abc",
        "zero",
        "leading-zero",
        "auth-abc",
        "auth-unknown-int",
        "auth-over-query",
        "auth-room-only",
    ],
)
async def test_bad_id_user_gets_connect_error_and_registers_nothing(
    raw_client: Callable[..., Client],
    node: WorkerNode,
    query: dict[str, str],
    auth: dict[str, Any] | None,
    expected: str,
) -> None:
    """A missing or unknown id_user is refused with 44{"message"} naming it; nothing is kept."""
    client = raw_client(socket_path(room="Maths", **query))
    await client.open()
    message = await client.connect_refused(auth)
    assert "id_user" in message
    assert expected in message
    await client.assert_nothing()  # no handshake, no events
    assert len(node.registry) == 0
    assert await roster_of(node, "Maths") == []


@pytest.mark.parametrize("frame", ["40/admin,", '40/admin,{"id_user":"1"}', "40/admin"])
async def test_connect_to_another_namespace_is_invalid_namespace(
    raw_client: Callable[..., Client], node: WorkerNode, frame: str
) -> None:
    """CONNECT to a namespace other than "/" gets CONNECT_ERROR "Invalid namespace" there."""
    client = raw_client(socket_path(id_user="1", room="Maths"))
    await client.open()
    await client.send(frame)
    assert await client.recv_frame() == '44/admin,{"message":"Invalid namespace"}'
    await client.assert_nothing()
    assert len(node.registry) == 0


async def test_invalid_room_at_connect_is_refused(
    raw_client: Callable[..., Client], node: WorkerNode
) -> None:
    """A room that could not be joined refuses the CONNECT rather than dropping the room."""
    client = raw_client(socket_path(id_user="1", room="x" * 101))
    await client.open()
    assert "100" in await client.connect_refused()
    assert len(node.registry) == 0


# ---- where id_user and room come from ----------------------------------------------------


async def test_id_user_and_room_from_the_query(connect: ClientFactory, node: WorkerNode) -> None:
    """id_user and room in the URL query: the socket is in that room as that user."""
    client = await connect(id_user="4", room="Maths")
    assert await roster_of(node, "Maths") == [(client.sid, "4")]


async def test_room_is_subscribed_before_the_connect_reply(
    raw_client: Callable[..., Client], node: WorkerNode
) -> None:
    """With a room at CONNECT, the worker is in the room's group before it answers, so the
    client gets every event of the room from its CONNECT reply on."""
    client = raw_client(socket_path(id_user="4", room="Maths"))
    await client.open()
    await client.send("40")
    assert isinstance(await client.recv(), codec.Connect)
    assert room_group("Maths") in node.subscriber.groups  # type: ignore[attr-defined]


async def test_room_events_during_the_connect_come_after_the_handshake(
    raw_client: Callable[..., Client], node: WorkerNode, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An event of the room that reaches the worker while it subscribes the room at CONNECT
    is held: the client's first packets are still the CONNECT reply and the handshake."""
    subscribe = node.join

    async def join_while_an_event_arrives(id_socket: str, room: str) -> None:
        await subscribe(id_socket, room)
        await node.emit_to_rooms([room], codec.encode_event("socket-connected", "early"))
        await asyncio.sleep(0.05)  # the worker's listener delivers it before CONNECT goes on

    monkeypatch.setattr(node, "join", join_while_an_event_arrives)
    client = raw_client(socket_path(id_user="4", room="Maths"))
    await client.open()
    await client.send("40")
    assert isinstance(await client.recv(), codec.Connect)
    assert await client.recv() == codec.Event("handshake", ({"procid": node.procid},))
    assert await client.recv() == codec.Event("socket-connected", ("early",))


@pytest.mark.parametrize("id_user", ["5", 5])
async def test_id_user_and_room_from_the_auth_payload(
    connect: ClientFactory, node: WorkerNode, id_user: str | int
) -> None:
    """id_user (string or number) and room in the CONNECT auth payload; id_user becomes "5"."""
    client = await connect(auth={"id_user": id_user, "room": "Maths"})
    assert await roster_of(node, "Maths") == [(client.sid, "5")]


async def test_auth_payload_wins_over_the_query(connect: ClientFactory, node: WorkerNode) -> None:
    """When both give id_user and room, the auth payload's are used."""
    client = await connect(auth={"id_user": "3", "room": "Maths"}, id_user="2", room="Physics")
    assert await roster_of(node, "Maths") == [(client.sid, "3")]
    assert await roster_of(node, "Physics") == []


async def test_auth_without_room_falls_back_to_the_query_room(
    connect: ClientFactory, node: WorkerNode
) -> None:
    """Each field falls back to the query on its own: auth id_user plus query room."""
    client = await connect(auth={"id_user": "3"}, room="Physics")
    assert await roster_of(node, "Physics") == [(client.sid, "3")]


async def test_socket_without_a_room(connect: ClientFactory, node: WorkerNode) -> None:
    """A socket may connect in no room: it is registered, in no room, and can join later."""
    client = await connect(id_user="6")
    sock = node.registry.get(client.sid or "")
    assert sock is not None and sock.id_user == "6" and sock.rooms == set()
    assert node.registry.room_count == 0
    await client.assert_nothing()
    assert await client.call("join", "Maths") == {"ok": True}
    assert await roster_of(node, "Maths") == [(client.sid, "6")]


async def test_handshake_names_this_worker(connect: ClientFactory, node: WorkerNode) -> None:
    """Right after 40{"sid"} the socket gets "handshake" {"procid": <this worker>}, only that."""
    client = await connect(id_user="1", room="Maths")
    assert client.handshake == ({"procid": node.procid},)
    await client.assert_nothing()


async def test_second_connect_on_one_connection_closes_it(
    connect: ClientFactory, node: WorkerNode
) -> None:
    """CONNECT on an already connected namespace is a protocol error that drops the socket
    (and /metrics counts it)."""
    closes = limit_closes("protocol_error")
    client = await connect(id_user="1", room="Maths")
    await client.send("40")
    await expect(
        client, "error", {"message": "CONNECT on an already connected namespace: disconnecting"}
    )
    await client.assert_closed()
    assert len(node.registry) == 0
    assert limit_closes("protocol_error") == closes + 1


async def test_client_that_never_connects_is_closed(
    settings: Settings, raw_client: Callable[..., Client], node: WorkerNode
) -> None:
    """An Engine.IO session that sends no CONNECT in time is closed (and counted)."""
    settings.SOCKETIO_CONNECT_TIMEOUT_S = 0.2
    closes = limit_closes("connect_timeout")
    client = raw_client(socket_path(id_user="1"))
    await client.open()
    await client.assert_closed()
    assert len(node.registry) == 0
    assert limit_closes("connect_timeout") == closes + 1


# ---- rooms ------------------------------------------------------------------------------


async def test_connecting_into_a_room_announces_to_the_others(connect: ClientFactory) -> None:
    """Others in the room get "socket-connected" <sid> once; other rooms and the newcomer not."""
    first = await connect(id_user="1", room="Maths")
    elsewhere = await connect(id_user="2", room="Physics")
    newcomer = await connect(id_user="3", room="Maths")
    await expect(first, "socket-connected", newcomer.sid)
    await quiet(first, elsewhere, newcomer)


async def test_join_acks_and_announces_to_the_room(
    connect: ClientFactory, node: WorkerNode
) -> None:
    """join acks {"ok": true}, tells the room's others once; joining again changes nothing."""
    member = await connect(id_user="1", room="Maths")
    joiner = await connect(id_user="2")
    await member.assert_nothing()
    assert await joiner.call("join", "Maths") == {"ok": True}
    await expect(member, "socket-connected", joiner.sid)
    assert await joiner.call("join", "Maths") == {"ok": True}
    await quiet(member, joiner)
    assert sorted(await roster_of(node, "Maths")) == sorted([(member.sid, "1"), (joiner.sid, "2")])


async def test_leave_acks_and_announces_to_that_room_only(
    connect: ClientFactory, node: WorkerNode
) -> None:
    """leave acks {"ok": true}; that room's others get "socket-disconnected", other rooms not."""
    leaver = await connect(id_user="1", room="Maths")
    assert await leaver.call("join", "Physics") == {"ok": True}
    maths = await connect(id_user="2", room="Maths")
    physics = await connect(id_user="3", room="Physics")
    await expect(leaver, "socket-connected", maths.sid)
    await expect(leaver, "socket-connected", physics.sid)

    assert await leaver.call("leave", "Maths") == {"ok": True}
    await expect(maths, "socket-disconnected", leaver.sid)
    await quiet(maths, physics, leaver)
    assert await roster_of(node, "Maths") == [(maths.sid, "2")]
    assert sorted(await roster_of(node, "Physics")) == sorted(
        [(leaver.sid, "1"), (physics.sid, "3")]
    )
    # Leaving a room one is not in is harmless and announces nothing.
    assert await leaver.call("leave", "Maths") == {"ok": True}
    await maths.assert_nothing()


@pytest.mark.parametrize("action", ["join", "leave"])
@pytest.mark.parametrize(
    "room",
    ["", "x" * 101, "a\nb", "nul\x00", "del\x7f", {"name": "Maths"}, ["Maths"], None, True],
    ids=["empty", "101-chars", "newline", "nul", "del", "object", "array", "null", "bool"],
)
async def test_invalid_room_is_refused_in_the_ack(
    connect: ClientFactory, node: WorkerNode, action: str, room: object
) -> None:
    """An invalid room acks {"ok": false, "error": <why>} and changes no membership."""
    client = await connect(id_user="1", room="Maths")
    reply = await client.call(action, room)
    assert reply["ok"] is False
    assert isinstance(reply["error"], str) and "room" in reply["error"]
    assert set(reply) == {"ok", "error"}
    sock = node.registry.get(client.sid or "")
    assert sock is not None and sock.rooms == {"Maths"}
    await client.assert_nothing()


async def test_join_without_an_argument_is_refused(connect: ClientFactory) -> None:
    """`join` with no room at all acks an error rather than failing the connection."""
    client = await connect(id_user="1")
    reply = await client.call("join")
    assert reply["ok"] is False and reply["error"]


async def test_longest_room_name_is_accepted(connect: ClientFactory, node: WorkerNode) -> None:
    """A room name of exactly 100 characters is valid."""
    client = await connect(id_user="1")
    assert await client.call("join", "x" * 100) == {"ok": True}
    assert await roster_of(node, "x" * 100) == [(client.sid, "1")]


@pytest.mark.parametrize("room", ["Mathématiques", "数学 🧮", "a/b c", "Maths?x=1&y=%2F"])
async def test_unicode_and_punctuated_room_names(
    connect: ClientFactory, node: WorkerNode, room: str
) -> None:
    """Any printable name works as a room, kept apart from rooms with other names."""
    first = await connect(auth={"id_user": "1", "room": room})
    other = await connect(auth={"id_user": "3", "room": room + "!"})
    second = await connect(id_user="2")
    assert await second.call("join", room) == {"ok": True}
    await expect(first, "socket-connected", second.sid)
    await other.assert_nothing()
    assert sorted(await roster_of(node, room)) == sorted([(first.sid, "1"), (second.sid, "2")])
    assert await roster_of(node, room + "!") == [(other.sid, "3")]


async def test_socket_in_two_rooms(connect: ClientFactory, node: WorkerNode) -> None:
    """A socket can be in two rooms at once; each room's others learn of it."""
    maths = await connect(id_user="2", room="Maths")
    physics = await connect(id_user="3", room="Physics")
    both = await connect(id_user="1", room="Maths")
    assert await both.call("join", "Physics") == {"ok": True}
    await expect(maths, "socket-connected", both.sid)
    await expect(physics, "socket-connected", both.sid)
    assert (both.sid, "1") in await roster_of(node, "Maths")
    assert (both.sid, "1") in await roster_of(node, "Physics")
    sock = node.registry.get(both.sid or "")
    assert sock is not None and sock.rooms == {"Maths", "Physics"}


# ---- identity-change ----------------------------------------------------------------------


async def test_identity_change_reaches_each_other_member_once_with_the_senders_id(
    connect: ClientFactory,
) -> None:
    """identity-change goes once to every other socket of the sender's rooms, id_user stamped.

    A receiver sharing two rooms with the sender gets it once; the sender, and sockets in
    no shared room, get nothing; a forged id_user in the payload is overwritten.
    """
    maths = await connect(id_user="2", room="Maths")
    physics = await connect(id_user="3", room="Physics")
    both = await connect(id_user="4", room="Maths")
    assert await both.call("join", "Physics") == {"ok": True}
    stranger = await connect(id_user="5", room="Chemistry")
    sender = await connect(id_user="1", room="Maths")
    assert await sender.call("join", "Physics") == {"ok": True}
    await expect(maths, "socket-connected", both.sid)
    await expect(physics, "socket-connected", both.sid)
    for receiver in (maths, physics):
        await expect(receiver, "socket-connected", sender.sid)
    await expect(both, "socket-connected", sender.sid)
    await expect(both, "socket-connected", sender.sid)  # once per room it joined

    received, delivered = counted("events_received"), counted("events_delivered")
    reply = await sender.call("identity-change", {"name": "Johnny", "id_user": "9", "n": [1]})
    assert reply == {"ok": True}
    for receiver in (maths, physics, both):
        await expect(receiver, "identity-change", {"name": "Johnny", "id_user": "1", "n": [1]})
    await quiet(maths, physics, both, stranger, sender)
    assert (counted("events_received"), counted("events_delivered")) == (
        received + 1,
        delivered + 3,
    )


async def test_identity_change_without_an_ack_is_relayed_too(connect: ClientFactory) -> None:
    """An identity-change without an ack id is relayed the same way, and nothing comes back."""
    receiver = await connect(id_user="2", room="Maths")
    sender = await connect(id_user="1", room="Maths")
    await expect(receiver, "socket-connected", sender.sid)
    await sender.emit("identity-change", {"name": "Jo"})
    await expect(receiver, "identity-change", {"name": "Jo", "id_user": "1"})
    await sender.assert_nothing()


async def test_identity_change_outside_any_room_acks_ok(connect: ClientFactory) -> None:
    """A socket in no room may send identity-change: acked, delivered to nobody."""
    other = await connect(id_user="2", room="Maths")
    sender = await connect(id_user="1")
    assert await sender.call("identity-change", {"name": "Jo"}) == {"ok": True}
    await quiet(other, sender)


async def test_identity_change_burst_beyond_the_rate_is_dropped(
    connect: ClientFactory, settings: Settings
) -> None:
    """Past 20 identity-change in a burst, the extra ones are dropped: an error event each,
    an ack {"ok": false}, and nothing relayed for them."""
    assert settings.SOCKETIO_IDENTITY_CHANGE_RATE == 20
    receiver = await connect(id_user="2", room="Maths")
    sender = await connect(id_user="1", room="Maths")
    await expect(receiver, "socket-connected", sender.sid)

    burst = 30
    ids = [await sender.emit_with_ack("identity-change", {"seq": i}) for i in range(burst)]
    replies: dict[int, Any] = {}
    errors: list[Any] = []
    while len(replies) < burst:
        packet = await sender.recv()
        if isinstance(packet, codec.Ack):
            replies[packet.ack_id] = packet.args
        else:
            assert isinstance(packet, codec.Event) and packet.name == "error", packet
            errors.append(packet.args)
    assert sorted(replies) == ids
    ok = [i for i in ids if replies[i] == ({"ok": True},)]
    dropped = [i for i in ids if i not in ok]
    assert ok[:20] == ids[:20]  # the bucket holds a burst of 20
    assert len(dropped) >= 5  # the burst takes far less than the 0.25 s that refills 5
    for i in dropped:
        (reply,) = replies[i]
        assert reply["ok"] is False and "rate" in reply["error"]
    assert len(errors) == len(dropped)
    assert all(set(args[0]) == {"message"} and "rate" in args[0]["message"] for args in errors)

    seq = {ack_id: i for i, ack_id in enumerate(ids)}
    relayed = [(await receiver.recv_event()) for _ in ok]
    assert [e.args for e in relayed] == [({"seq": seq[i], "id_user": "1"},) for i in ok]
    assert {e.name for e in relayed} == {"identity-change"}
    await receiver.assert_nothing()


# ---- acknowledgements ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        ('4217["join","Maths"]', {"ok": True}),
        ('4217["leave","Physics"]', {"ok": True}),
        ('4217["identity-change",{"name":"Jo"}]', {"ok": True}),
        ('4217["no-such-event",1,2]', {"ok": False, "error": "unknown event: no-such-event"}),
        ('4217["no-such-event"]', {"ok": False, "error": "unknown event: no-such-event"}),
        ("4217[42]", {"ok": False, "error": "unknown event: 42"}),
    ],
)
async def test_every_event_with_an_ack_id_gets_exactly_one_ack(
    connect: ClientFactory, frame: str, expected: dict[str, Any]
) -> None:
    """An EVENT carrying an ack id is answered by one ACK with that id, whatever its name."""
    client = await connect(id_user="1")
    await client.send(frame)
    assert await client.recv_frame() == "4317" + json.dumps([expected], separators=(",", ":"))
    await client.assert_nothing()


async def test_unknown_event_without_an_ack_gets_no_reply(
    connect: ClientFactory, node: WorkerNode
) -> None:
    """An unknown event without an ack id is ignored and the socket stays connected."""
    client = await connect(id_user="1", room="Maths")
    await client.emit("no-such-event", {"x": 1})
    await client.assert_nothing()
    assert await client.call("join", "Physics") == {"ok": True}
    assert client.sid is not None and node.registry.get(client.sid) is not None


async def test_a_deleted_user_is_refused_at_once_although_just_seen(
    connect: ClientFactory, raw_client: Callable[..., Client]
) -> None:
    """CONNECTs trust a user seen a moment ago (no database hop); deleting the user
    ends that trust at once, here by post_delete, elsewhere by the cluster broadcast."""
    await connect(id_user="2")
    assert "2" in KNOWN_USERS
    await database_sync_to_async(PlaygroundUser.objects.filter(pk=2).delete)()
    assert "2" not in KNOWN_USERS
    client = raw_client(socket_path(id_user="2"))
    await client.open()
    assert await client.connect_refused() == "Unknown id_user: 2"


async def test_the_deletion_broadcast_makes_every_worker_forget(node: WorkerNode) -> None:
    KNOWN_USERS.remember("7")
    await node.publisher.group_send(CLUSTER_GROUP, events.user_deleted("7"))
    for _ in range(100):
        if "7" not in KNOWN_USERS:
            break
        await asyncio.sleep(0.01)
    assert "7" not in KNOWN_USERS


async def test_a_join_beyond_the_rooms_per_socket_cap_is_refused_and_changes_nothing(
    connect: ClientFactory, node: WorkerNode, socketio_env: Settings
) -> None:
    """Each room a socket is in costs every event it sends one more message."""
    socketio_env.SOCKETIO_MAX_ROOMS_PER_SOCKET = 3
    client = await connect(id_user="1", room="r0")
    for room in ("r1", "r2"):
        assert await client.call("join", room) == {"ok": True}
    assert await client.call("join", "r3") == {
        "ok": False,
        "error": "a socket may be in at most 3 rooms",
    }
    assert await client.call("join", "r2") == {"ok": True}  # already in it: no new room
    assert node.registry.room_count == 3
    assert await client.call("leave", "r0") == {"ok": True}
    assert await client.call("join", "r3") == {"ok": True}
