"""What a socket's leaving costs the cluster, paid after it is gone by one task per worker.

A socket that disconnects is taken out of the registry at once, synchronously; the rest
is queued here: the UNSUBSCRIBE of each room it was this worker's last socket in, and the
`socket-disconnected` its rooms' other members must hear. None of it is awaited inside the
socket's application instance: daphne kills an instance still running
`application_close_timeout` (10 s) after its client left, and a thousand sockets in 100
rooms each leaving at once, each awaiting two hundred Redis round trips, would be killed
holding their per-address counts and room subscriptions (issue 29, item 2).

- Unsubscribes go first and in bulk: one UNSUBSCRIBE names up to a thousand rooms
  (rooms.bus.subscriber). A room is left only if it is still empty when the command is
  queued, and the check and the queueing happen in one step of the event loop: a socket
  that joined the room meanwhile keeps it subscribed.
- Announcements are pipelined, about a thousand PUBLISHes per write and wait.
- An announcement Redis did not take (an outage) stays queued and is published once the
  cluster is back: when the directory lists alive again every worker that was alive
  before the failure (a worker is listed only once its channel is subscribed, so it has
  resubscribed its rooms: rooms.cluster.membership), or `settle` seconds after the
  directory answers again if one of them never comes back (or none had been seen yet).
  At most `max_queued` room messages wait; beyond, the oldest are dropped with a warning.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from rooms.bus.publisher import Publisher
from rooms.bus.subscriber import Subscriber
from rooms.cluster.events import Frame, new_event_id, room_emit
from rooms.cluster.names import room_group
from rooms.cluster.registry import Registry

logger = logging.getLogger(__name__)

PUBLISH_BATCH = 1000
"""Room messages published per write and wait."""

DEFAULT_MAX_QUEUED = 1_000_000
"""Room messages that may wait for Redis: 10,000 sockets in 100 rooms each, about 10 MB."""


@dataclass
class Departure:
    """One frame for several rooms (a socket's `socket-disconnected`); `event` lets a
    member of several of them be served once (rooms.cluster.fanout)."""

    rooms: list[str]
    frame: Frame
    event: str | None


class Departures:
    """This worker's queue of what leaving sockets left to do, and the task that works it
    off (`run`, started by the node)."""

    def __init__(
        self,
        *,
        registry: Registry,
        publisher: Publisher,
        subscriber: Subscriber,
        send_timeout: float = 5.0,
        settle: float = 5.0,
        max_queued: int = DEFAULT_MAX_QUEUED,
    ) -> None:
        self.registry = registry
        self.publisher = publisher
        self.subscriber = subscriber
        self.send_timeout = send_timeout
        self.settle = settle
        self.max_queued = max_queued
        self._unsubscribe: dict[str, None] = {}  # rooms emptied here, in order
        self._announcements: deque[Departure] = deque()
        self._queued = 0  # room messages in _announcements
        self._wake = asyncio.Event()
        self._done = asyncio.Event()  # set while nothing can be done now
        self._done.set()
        self._held = False  # a publish failed: wait for the cluster to be back
        self._awaited: set[str] = set()  # workers alive before the failure
        self._alive: set[str] = set()  # at the directory's last scan
        self._back_since: float | None = None  # the directory's first answer since

    # ---- queueing (synchronous: callable from anywhere, awaits nothing) -------------------

    def rooms_emptied(self, rooms: Iterable[str]) -> None:
        """Rooms this worker holds no socket in any more: to be unsubscribed."""
        for room in rooms:
            self._unsubscribe[room] = None
        self._awake()

    def announce(self, rooms: Sequence[str], frame: Frame) -> None:
        """`frame` to every socket in any of `rooms`, each socket once."""
        if not rooms:
            return
        event = new_event_id() if len(rooms) > 1 else None
        self._announcements.append(Departure(list(rooms), frame, event))
        self._queued += len(rooms)
        self._drop_beyond_cap()
        self._awake()

    def saw_alive(self, procids: set[str]) -> None:
        """The workers the directory's last scan found alive (rooms.cluster.membership)."""
        self._alive = procids
        if not self._held:
            return
        now = time.monotonic()
        if self._back_since is None:
            self._back_since = now
        back = bool(self._awaited) and self._awaited <= procids
        if back or now - self._back_since >= self.settle:
            self._held = False
            self._awake()

    @property
    def queued(self) -> int:
        """Room messages waiting to be published."""
        return self._queued

    @property
    def idle(self) -> bool:
        return not self._unsubscribe and not self._announcements

    async def flush(self, within: float) -> None:
        """Wait up to `within` seconds for what can be sent now to be handed to Redis (a
        stopping worker's last departures)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(within):
                await self._done.wait()

    # ---- the worker's task -----------------------------------------------------------------

    async def run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self._work()
            except Exception:  # a bug must not end every later departure's announcement
                logger.exception("departures task failed; carrying on")
            if not self._wake.is_set():
                self._done.set()

    def _awake(self) -> None:
        self._done.clear()
        self._wake.set()

    async def _work(self) -> None:
        """Until nothing more may be done now: emptied rooms first, then announcements."""
        while True:
            if self._unsubscribe:
                await self._unsubscribe_emptied()
            elif self._announcements and not self._held:
                await self._publish_some()
            else:
                return

    async def _unsubscribe_emptied(self) -> None:
        groups = [room_group(r) for r in self._unsubscribe if not self.registry.has_room(r)]
        self._unsubscribe.clear()
        if not groups:
            return
        try:
            async with asyncio.timeout(self.send_timeout):
                await self.subscriber.group_discard(*groups)  # queued before its first await
        except TimeoutError:
            logger.warning("unsubscribing %d rooms: no confirmation in time", len(groups))
        except Exception as exc:  # the connection is lost, and its subscriptions with it
            logger.warning("unsubscribing %d rooms: %s: %s", len(groups), type(exc).__name__, exc)

    async def _publish_some(self) -> None:
        chunk: list[Departure] = []
        count = 0
        while self._announcements and count < PUBLISH_BATCH:
            departure = self._announcements.popleft()
            chunk.append(departure)
            count += len(departure.rooms)
        self._queued -= count
        messages = [
            (room_group(room), room_emit(room, d.frame, event=d.event))
            for d in chunk
            for room in d.rooms
        ]
        try:
            async with asyncio.timeout(self.send_timeout):
                published = await self.publisher.group_send_many(messages)
        except TimeoutError:  # still queued on the connection: sent if Redis reads again
            logger.warning("announcing departures: %d messages not confirmed in time", count)
            return
        if all(published):
            return
        failed = self._unpublished(chunk, published)
        for departure in reversed(failed):
            self._announcements.appendleft(departure)
            self._queued += len(departure.rooms)
        self._drop_beyond_cap()
        if not self._held:
            logger.warning(
                "Redis did not take %d departure messages: held until the cluster is back",
                sum(len(d.rooms) for d in failed),
            )
            self._held, self._awaited, self._back_since = True, set(self._alive), None

    @staticmethod
    def _unpublished(chunk: list[Departure], published: list[bool]) -> list[Departure]:
        """Each departure of the chunk with the rooms its message did not reach Redis for."""
        failed = []
        done = iter(published)
        for departure in chunk:
            rooms = [room for room in departure.rooms if not next(done)]
            if rooms:
                failed.append(Departure(rooms, departure.frame, departure.event))
        return failed

    def _drop_beyond_cap(self) -> None:
        dropped = 0
        while self._queued > self.max_queued and self._announcements:
            departure = self._announcements.popleft()
            self._queued -= len(departure.rooms)
            dropped += len(departure.rooms)
        if dropped:
            logger.warning("dropped the %d oldest departure messages waiting for Redis", dropped)
