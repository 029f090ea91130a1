"""Attackers for the hostile-client tests: each runs until `stop` is set and counts what it
did, so a test can combine them and say how hard the cluster was pushed."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from dataclasses import dataclass, field

from websockets.exceptions import ConnectionClosed, InvalidHandshake

from tests.hostile.harm import join_paced
from tests.integration.servers import Cluster
from tests.integration.wire import recv_packet, socketio_connect

# About 750 KB of nested empty arrays, under maxPayload (1,000,000): decoding it cost a
# worker 140-190 ms of CPU before frames were bounded to 10,000 JSON elements.
EXPENSIVE_FRAME = '42["x",[' + ",".join(["[[],[],[]]"] * 68_000) + "]]"


@dataclass
class Tally:
    frames: int = 0
    connections: int = 0
    refusals: list[str] = field(default_factory=list)  # what the server answered instead
    slowest_close: float = 0.0  # seconds from sending the frame to the server's close
    acked: int = 0  # events acked {"ok": true}
    sid: str = ""  # the attacking socket's id, when there is one
    ready: asyncio.Event = field(default_factory=asyncio.Event)  # set once it attacks


async def expensive_frames(cluster: Cluster, stop: asyncio.Event, tally: Tally) -> None:
    """Connect, send one EXPENSIVE_FRAME, wait for the server to close, again, until stop."""
    while not stop.is_set():
        try:
            ws, _, _ = await socketio_connect(cluster, id_user="7")
        except (OSError, InvalidHandshake, AssertionError, TimeoutError) as exc:
            tally.refusals.append(repr(exc))
            await asyncio.sleep(0.05)
            continue
        tally.connections += 1
        tally.ready.set()
        sent = time.monotonic()
        with contextlib.suppress(ConnectionClosed):
            await ws.send(EXPENSIVE_FRAME)
            tally.frames += 1
            async with asyncio.timeout(5):
                while True:
                    await ws.recv()
        tally.slowest_close = max(tally.slowest_close, time.monotonic() - sent)


def many_rooms(count: int) -> list[str]:
    tag = uuid.uuid4().hex[:8]
    return [f"{tag}-{i:04d}-".ljust(100, "x") for i in range(count)]


async def rooms_flood(
    cluster: Cluster, stop: asyncio.Event, tally: Tally, extra_room: str | None = None
) -> None:
    """One socket in 100 rooms of 100-character names (the cap; and `extra_room` among
    them), sending identity-changes at 15 a second (under the 20 allowed) without waiting
    for their acks, which are counted as they come."""
    ws, tally.sid, _ = await socketio_connect(cluster, id_user="8")
    rooms = many_rooms(99) + [extra_room or many_rooms(1)[0]]

    async def count_acks() -> None:
        with contextlib.suppress(ConnectionClosed):
            while True:
                frame = await recv_packet(ws, within=60)
                if frame.startswith("43"):
                    reply = json.loads(frame[frame.index("[") :])[0]
                    if reply == {"ok": True}:
                        tally.acked += 1
                    else:
                        tally.refusals.append(repr(reply))

    try:
        assert await join_paced(ws, rooms) == [{"ok": True}] * len(rooms)
        tally.ready.set()
        reader = asyncio.create_task(count_acks())
        i = 1000
        while not stop.is_set():
            await ws.send(f'42{i}["identity-change",{{"name":"flood {i}"}}]')
            tally.frames += 1
            i += 1
            await asyncio.sleep(1 / 15)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(reader), 2)  # the last acks
        reader.cancel()
    finally:
        await ws.close()
