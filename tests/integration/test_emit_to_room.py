"""Reaching sockets from Django code: rooms.runtime.emit_to_room does, a Channels
`group_send` does not (the sockets are not members of Channels groups)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from typing import Any

import pytest

from tests.integration.recording import Client
from tests.integration.servers import ROOT, Cluster

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

SCRIPT = """
import sys
import django
django.setup()
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from rooms.cluster.names import group_for_room
from rooms.runtime import emit_to_room
room = sys.argv[1]
frame = '42["announcement",{"via":"group_send"}]'
message = {"type": "room.emit", "rooms": [room], "index": 0, "frame": frame, "except": None}
async_to_sync(get_channel_layer().group_send)(group_for_room(room), message)
emit_to_room(room, "announcement", {"via": "emit_to_room"})
"""


def run_django_script(cluster: Cluster, room: str) -> None:
    """A plain Python process with the cluster's settings (REDIS_URL, CHANNEL_PREFIX)."""
    subprocess.run(
        [sys.executable, "-c", SCRIPT, room],
        cwd=ROOT,
        env=cluster.env(),
        check=True,
        capture_output=True,
        timeout=30,
    )


async def test_emit_to_room_reaches_the_room_and_group_send_does_not(
    shared_cluster: Cluster,
) -> None:
    """A socket in room X gets the event sent with emit_to_room from another process, and
    nothing from the channels_redis layer's group_send of the same message to the same
    group name, sent just before it."""
    room = f"news-{uuid.uuid4().hex[:8]}"
    outsider_room = f"other-{uuid.uuid4().hex[:8]}"
    received: asyncio.Queue[Any] = asyncio.Queue()
    outsider_received: asyncio.Queue[Any] = asyncio.Queue()
    member, outsider = Client(), Client()
    member.sio.on("announcement", received.put_nowait)
    outsider.sio.on("announcement", outsider_received.put_nowait)
    await member.connect(shared_cluster.url, "1", room)
    await outsider.connect(shared_cluster.url, "2", outsider_room)
    try:
        await asyncio.to_thread(run_django_script, shared_cluster, room)
        assert await asyncio.wait_for(received.get(), 5) == {"via": "emit_to_room"}
        await asyncio.sleep(1)  # generous: the group_send was published first
        assert received.empty(), received.get_nowait()
        assert outsider_received.empty()
    finally:
        await member.close()
        await outsider.close()
