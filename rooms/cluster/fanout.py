"""Room events: published once per room group, handed by each worker to its own sockets."""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from rooms.bus.publisher import Publisher
from rooms.cluster.events import Frame, new_event_id, room_emit
from rooms.cluster.names import room_group
from rooms.cluster.registry import LocalSocket, Registry
from rooms.metrics.series import EVENTS_DELIVERED

logger = logging.getLogger(__name__)

REMEMBERED_DELIVERIES = 100_000
"""Socket ids a worker keeps for recent multi-room events (a few MB at most)."""

BusCall = Callable[..., Awaitable[None]]
"""Runs one bus write so that a Redis outage is logged, never raised (WorkerNode.bus_call)."""


class RoomFanout:
    """Room events, published so that their cost grows with what is delivered.

    An event for several rooms is one message per room, each carrying only the frame and
    that room: a socket in several of the rooms is served once because such messages
    carry an event id, and each worker remembers which of its sockets it served each
    recent event (copies of one event arrive within milliseconds of each other, from one
    publisher, or from each worker forwarding one broadcast with the id it carries).
    The whole room list in every copy would make one event for a socket in 2000 rooms
    move about 400 MB through Redis.
    """

    def __init__(
        self,
        publisher: Publisher,
        registry: Registry,
        bus_call: BusCall,
        *,
        remember: int = REMEMBERED_DELIVERIES,
    ) -> None:
        self.publisher = publisher
        self.registry = registry
        self.bus_call = bus_call
        self.remember = remember
        self._served: OrderedDict[str, set[str]] = OrderedDict()  # event id -> socket ids
        self._remembered = 0  # socket ids held in _served, bounded by `remember`

    async def emit(
        self,
        rooms: Sequence[str],
        frame: Frame,
        *,
        except_socket: str | None = None,
        event: str | None = None,
    ) -> None:
        """Send one text frame to every socket in any of the rooms, each socket once.

        `event` is the id of an event that other workers publish too (a rename every
        worker holding the user's sockets forwards): all copies carry it, and a socket
        is served once across them. Without it, an event for several rooms gets its own.
        """
        ordered = list(dict.fromkeys(rooms))
        if event is None and len(ordered) > 1:
            event = new_event_id()
        for room in ordered:
            message = room_emit(room, frame, except_socket=except_socket, event=event)
            await self.bus_call(self.publisher.group_send, room_group(room), message)

    async def deliver(self, message: dict[str, Any]) -> None:
        """A room event from the bus, to this worker's sockets in that room."""
        frame: Frame = message["frame"]
        served = self._served_set(message.get("event"))
        delivered = 0
        for sock in self.registry.in_room(message["room"]):
            if sock.id_socket == message["except"]:
                continue
            if served is not None:
                if sock.id_socket in served:
                    continue
                served.add(sock.id_socket)
                self._remembered += 1
            delivered += 1
            if not sock.deliver_now(frame):
                await deliver(sock, frame)
        EVENTS_DELIVERED.inc(delivered)
        self._forget_oldest()

    def _served_set(self, event: str | None) -> set[str] | None:
        if event is None:
            return None
        served = self._served.get(event)
        if served is None:
            served = self._served[event] = set()
        return served

    def _forget_oldest(self) -> None:
        while self._remembered > self.remember and len(self._served) > 1:
            _, served = self._served.popitem(last=False)
            self._remembered -= len(served)

    async def to_all(self, frame: Frame) -> None:
        """One frame to every socket of this worker."""
        sockets = self.registry.all()  # a copy: sockets may leave meanwhile
        for sock in sockets:
            await deliver(sock, frame)
        EVENTS_DELIVERED.inc(len(sockets))


async def deliver(sock: LocalSocket, frame: Frame) -> None:
    try:
        await sock.deliver(frame)
    except Exception as exc:  # a socket closing under us must not stop the others
        logger.debug("could not deliver to %s: %s", sock.id_socket, exc)
