"""Which workers exist, which of them are alive right now, and telling the others.

The directory (rooms.bus.directory on Redis, LocalDirectory in a single process) lists
the workers and says which are alive; each worker's janitor keeps its own entry fresh and
removes and announces the dead.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

from rooms.bus.directory import ClusterUnavailable, WorkerInfo

logger = logging.getLogger(__name__)


class Directory(Protocol):
    async def register(self, info: WorkerInfo) -> None: ...
    async def heartbeat(self, procid: str) -> None: ...
    async def unregister(self, procid: str) -> None: ...
    async def scan(self) -> tuple[list[WorkerInfo], list[WorkerInfo]]:
        """(alive, dead) among the registered workers."""
        ...

    async def remove(self, procid: str) -> bool:
        """Drop a worker's entry; True only for the one caller that removed it."""
        ...

    async def ping(self) -> None: ...
    async def subscribed(self, channel: str) -> bool:
        """Whether Redis counts a subscriber on this channel right now."""
        ...


class LocalDirectory:
    """The directory of a single process with the in-memory layer: only itself."""

    def __init__(self) -> None:
        self._workers: dict[str, WorkerInfo] = {}

    async def register(self, info: WorkerInfo) -> None:
        self._workers[info.procid] = info

    async def heartbeat(self, procid: str) -> None:
        return None

    async def unregister(self, procid: str) -> None:
        self._workers.pop(procid, None)

    async def scan(self) -> tuple[list[WorkerInfo], list[WorkerInfo]]:
        return list(self._workers.values()), []

    async def remove(self, procid: str) -> bool:
        return self._workers.pop(procid, None) is not None

    async def ping(self) -> None:
        return None

    async def subscribed(self, channel: str) -> bool:
        return True


class Janitor:
    """Every interval: beat this worker's heartbeat, drop workers found dead (channel
    without subscriber, or heartbeat expired), and tell everyone.

    A worker must look dead on two scans in a row: after a Redis restart, live workers
    resubscribe within about a second and must not be declared gone meanwhile (rosters
    skip a dead worker at once anyway, from the same NUMSUB). This worker also puts itself
    back in the directory when it vanished (Redis restarted empty, or a peer removed it
    during a partition), but only once its own channel is subscribed again, so nobody sees
    it registered yet deaf; `on_return` then lets the node announce its sockets again.
    """

    def __init__(
        self,
        *,
        directory: Directory,
        info: Callable[[], WorkerInfo],
        saw_alive: Callable[[Sequence[WorkerInfo]], object],
        announce_down: Callable[[str], Awaitable[None]],
        on_return: Callable[[], Awaitable[None]],
        interval: float,
    ) -> None:
        self.directory = directory
        self.info = info
        self.saw_alive = saw_alive
        self.announce_down = announce_down
        self.on_return = on_return
        self.interval = interval
        self._suspects: set[str] = set()

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.sweep()
            except ClusterUnavailable as exc:
                logger.warning("janitor: %s", exc)

    async def sweep(self) -> None:
        me = self.info()
        await self.directory.heartbeat(me.procid)
        alive, dead = await self.directory.scan()
        self.saw_alive(alive)
        listed = {w.procid for w in alive} | {w.procid for w in dead}
        if me.procid not in listed and await self.directory.subscribed(me.channel):
            await self.directory.register(me)
            await self.on_return()
        dead_now = {w.procid for w in dead} - {me.procid}
        for procid in dead_now & self._suspects:
            if await self.directory.remove(procid):
                logger.warning("worker %s is gone", procid)
                await self.announce_down(procid)
        self._suspects = dead_now
