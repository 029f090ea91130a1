"""A `group_send` to a room's group reaches the room's sockets in a single process (no
Redis: SingleProcessChannelLayer and the in-process bus), from async code and through
`async_to_sync`; a message that cannot be emitted reaches nobody."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from channels.layers import channel_layers, get_channel_layer
from pytest_django.fixtures import Settings

from rooms import room_group
from rooms.runtime import emit_to_room
from tests.consumer.conftest import ClientFactory, expect, quiet

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def single_process_layer(socketio_env: Settings) -> None:
    socketio_env.CHANNEL_LAYERS = {
        "default": {"BACKEND": "rooms.bus.local.SingleProcessChannelLayer"}
    }
    channel_layers.backends.clear()


@pytest.mark.parametrize("room", ["Maths", "Mathématiques"], ids=["plain", "hashed"])
async def test_group_send_of_socketio_emit_reaches_the_rooms_sockets(
    connect: ClientFactory, room: str
) -> None:
    member = await connect(id_user="1", room=room)
    elsewhere = await connect(id_user="2", room="Physics")
    message = {"type": "socketio.emit", "event": "news", "args": [{"n": 1}, "two"]}
    await get_channel_layer().group_send(room_group(room), message)
    await expect(member, "news", {"n": 1}, "two")
    await asyncio.to_thread(emit_to_room, room, "news", 3)
    await expect(member, "news", 3)
    await quiet(member, elsewhere)


@pytest.mark.parametrize(
    "message",
    [
        {"type": "socketio.emit", "event": "connect", "args": []},
        {"type": "socketio.emit", "event": 5, "args": []},
        {"type": "socketio.emit", "event": "news", "args": "not a list"},
    ],
    ids=["reserved-name", "name-not-a-string", "args-not-a-list"],
)
async def test_a_socketio_emit_that_cannot_be_emitted_reaches_nobody(
    connect: ClientFactory, message: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    member = await connect(id_user="1", room="Maths")
    await get_channel_layer().group_send(room_group("Maths"), message)
    await quiet(member)
    assert "ignoring a socketio.emit" in caplog.text
