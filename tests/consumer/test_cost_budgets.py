"""What one connection, and one client address, may make a worker spend: bytes of
frames per second per connection (SOCKETIO_BYTE_RATE: each frame is decoded, and a valid
1 MB frame costs tens of ms), and refused CONNECTs per address per worker
(SOCKETIO_CONNECT_REFUSALS_PER_MINUTE: each costs a connection, a decode and a lookup)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from pytest_django.fixtures import Settings

from rooms.cluster.node import WorkerNode
from rooms.socketio import codec
from tests.consumer.conftest import Client, ClientFactory, expect, socket_path
from users import ratelimit

pytestmark = pytest.mark.django_db(transaction=True)

COMMAS = '42["x","' + "," * 599_990 + '"]'  # a valid frame of 600,000 characters


@pytest.fixture(autouse=True)
def no_refusals_yet(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ratelimit, "REFUSED_CONNECTS", ratelimit.AddressRateLimit())


async def test_a_client_sending_big_frames_past_its_byte_rate_is_told_and_disconnected(
    connect: ClientFactory, node: WorkerNode, socketio_env: Settings
) -> None:
    """Bursts of SOCKETIO_MAX_PAYLOAD: one frame of the largest size is served, a second
    one at once is not."""
    socketio_env.SOCKETIO_BYTE_RATE = 10_000
    client = await connect(id_user="1", room="Maths")
    await client.send(COMMAS)
    assert await client.call("join", "Physics") == {"ok": True}  # served, budget left
    await client.send(COMMAS)
    await expect(client, "error", {"message": "too many bytes: disconnecting"})
    await client.assert_closed()
    assert len(node.registry) == 0


async def test_small_frames_never_meet_the_byte_rate(
    connect: ClientFactory, socketio_env: Settings
) -> None:
    socketio_env.SOCKETIO_BYTE_RATE = 10_000
    client = await connect(id_user="1")
    for i in range(40):  # 40 x ~1,000 characters, well past 10,000 but within the burst
        assert await client.call("leave", f"room {i}", "x" * 1_000) == {"ok": True}


async def test_refused_connects_past_the_budget_of_an_address_close_its_connections(
    raw_client: Callable[..., Client], node: WorkerNode, socketio_env: Settings
) -> None:
    socketio_env.SOCKETIO_CONNECT_REFUSALS_PER_MINUTE = 4
    first = raw_client(socket_path())
    await first.open()
    for id_user in ("41", "42"):
        assert await first.connect_refused({"id_user": id_user}) == f"Unknown id_user: {id_user}"
    second = raw_client(socket_path())
    await second.open()
    for id_user in ("43", "44"):
        assert await second.connect_refused({"id_user": id_user}) == f"Unknown id_user: {id_user}"
    await second.send('40{"id_user":"45"}')
    refusal = await second.recv()
    assert refusal == codec.ConnectError("too many refused CONNECTs from this address")
    await second.assert_closed()
    third = raw_client(socket_path())
    connected, _ = await third.comm.connect(timeout=3)
    assert not connected  # refused at the handshake while the address is over its budget
    assert len(node.registry) == 0
