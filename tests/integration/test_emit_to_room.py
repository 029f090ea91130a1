"""Reaching sockets from Django code, the Channels way: a `group_send` of `socketio.emit` to
`rooms.room_group(room)` reaches the room's sockets on every worker, from another process
(through `async_to_sync`, as a view or a management command sends) and beside a plain
Channels consumer of the user's own on the same layer; `rooms.runtime.emit_to_room` is the
same call in one line."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from channels.layers import channel_layers, get_channel_layer
from channels.testing import WebsocketCommunicator
from django.test import override_settings

from rooms import room_group
from tests.integration.recording import Client, close_all, until_two_workers
from tests.integration.servers import Cluster

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

# Django code in another process, with the cluster's settings (REDIS_URL, CHANNEL_PREFIX)
SCRIPT = """
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from rooms import room_group
from rooms.runtime import emit_to_room
message = {"type": "socketio.emit", "event": "announcement", "args": [{"via": "group_send"}]}
async_to_sync(get_channel_layer().group_send)(room_group(ROOM), message)
emit_to_room(ROOM, "announcement", {"via": "emit_to_room"})
"""


async def test_group_send_to_a_rooms_group_reaches_its_sockets_on_every_worker(
    shared_cluster: Cluster,
) -> None:
    """Sockets of room X on both workers get both events sent from another process; a
    socket of another room gets neither."""
    room = f"news-{uuid.uuid4().hex[:8]}"
    received: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()

    async def member() -> Client:
        client = Client()
        client.sio.on("announcement", lambda data: received.put_nowait((client.sid, data)))
        return await client.connect(shared_cluster.url, "1", room)

    members = await until_two_workers([], member)
    outsider = Client()
    outsider.sio.on("announcement", lambda data: received.put_nowait(("outsider", data)))
    await outsider.connect(shared_cluster.url, "3", f"other-{uuid.uuid4().hex[:8]}")
    try:
        await asyncio.to_thread(shared_cluster.shell, f"ROOM = {room!r}\n{SCRIPT}")
        expected = {
            (client.sid, json.dumps({"via": via}))
            for client in members
            for via in ("group_send", "emit_to_room")
        }
        got = set()
        while len(got) < len(expected):
            sid, data = await asyncio.wait_for(received.get(), 5)
            got.add((sid, json.dumps(data)))
        assert got == expected
        await asyncio.sleep(0.3)
        assert received.empty(), received.get_nowait()
    finally:
        await close_all([*members, outsider])


class TutorialChatConsumer(AsyncJsonWebsocketConsumer):  # type: ignore[misc]
    """The chat consumer of Channels' tutorial: its socket joins a group, and a
    `chat.message` sent to the group is written to it."""

    async def connect(self) -> None:
        self.group = "chat_lobby"
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        await self.channel_layer.group_discard(self.group, self.channel_name)

    async def chat_message(self, event: dict[str, Any]) -> None:
        await self.send_json({"message": event["message"]})


@pytest.fixture
def cluster_layer(shared_cluster: Cluster) -> Iterator[None]:
    """This process's default layer: the cluster's (rooms.bus.layer), as the settings of
    a process with the cluster's REDIS_URL and CHANNEL_PREFIX configure it."""
    layers = {
        "default": {
            "BACKEND": "rooms.bus.layer.BusChannelLayer",
            "CONFIG": {"hosts": [shared_cluster.redis_url], "prefix": shared_cluster.prefix},
        }
    }
    with override_settings(CHANNEL_LAYERS=layers):
        yield
    channel_layers.backends.clear()


# Channels' own dispatch closes stale database connections before every message
@pytest.mark.django_db(transaction=True)
async def test_a_channels_consumer_of_ones_own_works_beside_the_sockets_on_one_layer(
    shared_cluster: Cluster, cluster_layer: None
) -> None:
    room = f"mixed-{uuid.uuid4().hex[:8]}"
    member, inbox = Client(), asyncio.Queue[Any]()
    member.sio.on("announcement", inbox.put_nowait)
    await member.connect(shared_cluster.url, "4", room)
    chat = WebsocketCommunicator(TutorialChatConsumer.as_asgi(), "/chat/lobby/")
    connected, _ = await chat.connect(timeout=5)
    assert connected
    try:
        layer = get_channel_layer()
        await layer.group_send("chat_lobby", {"type": "chat.message", "message": "hello"})
        message = {"type": "socketio.emit", "event": "announcement", "args": ["to the room"]}
        await layer.group_send(room_group(room), message)
        assert await chat.receive_json_from(timeout=5) == {"message": "hello"}
        assert await asyncio.wait_for(inbox.get(), 5) == "to the room"
    finally:
        await chat.disconnect(timeout=5)
        await member.close()
        await layer.close()
