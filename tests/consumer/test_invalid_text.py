"""Lone UTF-16 surrogates (valid JSON escapes, but no UTF-8 text) are refused at decode time
with an answer the client waits for, change nothing, and keep the connection open."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from rooms.cluster.node import WorkerNode
from rooms.socketio import codec
from tests.consumer.conftest import Client, ClientFactory, expect, quiet, socket_path

pytestmark = pytest.mark.django_db(transaction=True)


async def test_a_connect_with_a_lone_surrogate_gets_connect_error_and_registers_nothing(
    raw_client: Callable[..., Client], node: WorkerNode
) -> None:
    client = raw_client(socket_path())
    await client.open()
    await client.send('40{"id_user":"1","room":"\\ud800"}')
    packet = await client.recv()
    assert isinstance(packet, codec.ConnectError) and "lone surrogate" in packet.message
    assert len(node.registry) == 0
    assert await client.connect_namespace({"id_user": "1"})  # the connection still works


async def test_a_join_with_a_lone_surrogate_is_refused_in_its_ack(
    connect: ClientFactory, node: WorkerNode
) -> None:
    client = await connect(id_user="1")
    await client.send('4217["join","\\udfff"]')
    ack = await client.recv()
    assert isinstance(ack, codec.Ack) and ack.ack_id == 17
    assert ack.args[0]["ok"] is False and "lone surrogate" in ack.args[0]["error"]
    assert node.registry.room_count == 0
    assert await client.call("join", "Maths") == {"ok": True}


async def test_an_identity_change_with_a_lone_surrogate_reaches_nobody(
    connect: ClientFactory,
) -> None:
    sender = await connect(id_user="1", room="Maths")
    peer = await connect(id_user="2", room="Maths")
    await sender.recv_event()  # socket-connected of the peer
    await sender.send('42["identity-change",{"name":"\\ud800"}]')
    await expect(sender, "error", {"message": "invalid Unicode in the payload (a lone surrogate)"})
    await quiet(peer)
    await sender.emit("identity-change", {"name": "Johnny"})
    await expect(peer, "identity-change", {"name": "Johnny", "id_user": "1"})
