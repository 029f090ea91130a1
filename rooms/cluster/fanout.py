"""Room events: published once per room group, handed by each worker to its own sockets."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from rooms.bus.publisher import Publisher
from rooms.cluster.events import ROOM_EMIT
from rooms.cluster.names import group_for_room
from rooms.cluster.registry import LocalSocket, Registry

logger = logging.getLogger(__name__)

BusCall = Callable[..., Awaitable[None]]
"""Runs one bus write so that a Redis outage is logged, never raised (WorkerNode.bus_call)."""


class RoomFanout:
    def __init__(self, publisher: Publisher, registry: Registry, bus_call: BusCall) -> None:
        self.publisher = publisher
        self.registry = registry
        self.bus_call = bus_call

    async def emit(
        self, rooms: Sequence[str], frame: str, *, except_socket: str | None = None
    ) -> None:
        """Send one text frame to every socket in any of the rooms, each socket once.

        One message per room group; the copy for rooms[i] goes only to sockets that are
        in none of rooms[:i], so a socket in two of the rooms is not served twice.
        """
        ordered = list(dict.fromkeys(rooms))
        for index, room in enumerate(ordered):
            message = {
                "type": ROOM_EMIT,
                "rooms": ordered,
                "index": index,
                "frame": frame,
                "except": except_socket,
            }
            await self.bus_call(self.publisher.group_send, group_for_room(room), message)

    async def deliver(self, message: dict[str, Any]) -> None:
        """A room event from the bus, to this worker's sockets in that room."""
        rooms: list[str] = message["rooms"]
        index: int = message["index"]
        earlier = rooms[:index]
        frame: str = message["frame"]
        for sock in self.registry.in_room(rooms[index]):
            if sock.id_socket == message["except"] or (
                earlier and any(r in sock.rooms for r in earlier)
            ):
                continue
            if not sock.deliver_now(frame):
                await deliver(sock, frame)

    async def to_all(self, frame: str) -> None:
        """One frame to every socket of this worker."""
        for sock in self.registry.all():
            await deliver(sock, frame)


async def deliver(sock: LocalSocket, frame: str) -> None:
    try:
        await sock.deliver(frame)
    except Exception as exc:  # a socket closing under us must not stop the others
        logger.debug("could not deliver to %s: %s", sock.id_socket, exc)
