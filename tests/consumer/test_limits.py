"""Floods from one client are bounded: frames per second, refused CONNECTs per connection,
connections per client address, and lookups of users that do not exist."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from channels.db import database_sync_to_async
from pytest_django.fixtures import Settings

from rooms.cluster.known_users import KNOWN_USERS
from rooms.cluster.node import WorkerNode
from rooms.socketio import codec
from tests.consumer.conftest import Client, ClientFactory, expect, quiet, socket_path
from users.models import PlaygroundUser

pytestmark = pytest.mark.django_db(transaction=True)


async def test_a_client_over_its_frame_budget_is_told_and_disconnected(
    connect: ClientFactory, node: WorkerNode, socketio_env: Settings
) -> None:
    socketio_env.SOCKETIO_FRAME_RATE = 10  # bursts of 20
    client = await connect(id_user="1", room="Maths")
    peer = await connect(id_user="2", room="Maths")
    await client.recv_event()  # socket-connected of the peer
    for _ in range(40):
        await client.send('42["noise"]')
    await expect(client, "error", {"message": "too many frames: disconnecting"})
    await client.assert_closed()
    await expect(peer, "socket-disconnected", client.sid)
    assert [s.id_user for s in node.registry.all()] == ["2"]


async def test_a_well_behaved_client_stays_within_the_budget(
    connect: ClientFactory, socketio_env: Settings
) -> None:
    socketio_env.SOCKETIO_FRAME_RATE = 10
    client = await connect(id_user="1")
    for _ in range(5):
        assert await client.call("join", "Maths") == {"ok": True}
        await asyncio.sleep(0.1)


async def test_a_connection_is_closed_after_the_refused_connects_allowed(
    raw_client: Callable[..., Client], socketio_env: Settings
) -> None:
    socketio_env.SOCKETIO_MAX_CONNECT_ATTEMPTS = 3
    client = raw_client(socket_path())
    await client.open()
    for id_user in ("41", "42"):
        assert await client.connect_refused({"id_user": id_user}) == f"Unknown id_user: {id_user}"
    await client.send('40{"id_user":"43"}')
    refusal = await client.recv()
    assert isinstance(refusal, codec.ConnectError)
    await client.assert_closed()


async def test_connections_per_address_are_capped_per_worker(
    raw_client: Callable[..., Client], socketio_env: Settings
) -> None:
    socketio_env.SOCKETIO_MAX_CONNECTIONS_PER_ADDRESS = 2
    first, second = raw_client(socket_path()), raw_client(socket_path())
    await first.open()
    await second.open()
    third = raw_client(socket_path())
    connected, _ = await third.comm.connect(timeout=3)
    assert not connected  # refused at the handshake
    await first.finish()
    fourth = raw_client(socket_path())
    await fourth.open()  # a slot came free


async def test_an_unknown_user_is_looked_up_once_then_remembered_until_it_is_saved(
    raw_client: Callable[..., Client], connect: ClientFactory, node: WorkerNode
) -> None:
    client = raw_client(socket_path())
    await client.open()
    assert await client.connect_refused({"id_user": "42"}) == "Unknown id_user: 42"
    assert KNOWN_USERS.is_missing("42")
    await database_sync_to_async(PlaygroundUser.objects.create)(id=42, name="Newcomer")
    for _ in range(100):  # the save's broadcast reaches this worker's node
        if not KNOWN_USERS.is_missing("42"):
            break
        await asyncio.sleep(0.01)
    assert (await connect(id_user="42")).sid


async def test_identity_changes_past_the_fanout_budget_are_dropped(
    connect: ClientFactory, settings: Settings
) -> None:
    """Each identity-change costs its frame's bytes times the sender's rooms against
    SOCKETIO_FANOUT_BYTES_PER_SECOND: one whose cost the budget cannot cover is dropped
    with an error event and an ack {"ok": false}, and nothing is relayed for it; a small
    one still passes."""
    settings.SOCKETIO_FANOUT_BYTES_PER_SECOND = 10_000
    receiver = await connect(id_user="2", room="Maths")
    sender = await connect(id_user="1", room="Maths")
    await expect(receiver, "socket-connected", sender.sid)
    for room in ("Physics", "Chemistry", "Biology"):  # 4 rooms
        assert await sender.call("join", room) == {"ok": True}
    # a frame of over 3,000 bytes in 4 rooms: over 12,000 > 10,000
    reply = await sender.call("identity-change", {"name": "x" * 3000})
    message = "identity-change fan-out budget exceeded: event dropped"
    assert reply == {"ok": False, "error": message}
    await expect(sender, "error", {"message": message})
    assert await sender.call("identity-change", {"name": "Jo"}) == {"ok": True}
    await expect(receiver, "identity-change", {"name": "Jo", "id_user": "1"})
    await quiet(receiver)
