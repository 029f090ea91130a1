"""An idle worker that kept a burst's memory hands its slot to a fresh process.

CPython's object allocator returns an arena to the system only once every block in it is
free. After thousands of sockets leave at once, a few blocks still in use hold each of the
burst's arenas, so a worker's RSS stays at its high-water mark (84 -> 213 MB at 2,000
sockets x 100 rooms) though the memory it uses is back where it started; no allocator
setting brings it back within 10% (bench/README.md, "A mass disconnect"). A new process
does. As Celery's `worker_max_memory_per_child` and uWSGI's `reload-on-rss` do, a worker
that has held no connection for WORKER_RECYCLE_IDLE_S while its RSS is more than
WORKER_RECYCLE_RSS_GROWTH above its start-up's stops the way SIGTERM stops it (it leaves
the cluster first, so no roster waits for it) and exits with RECYCLE_EXIT_CODE; the
supervisor starts its successor at once on the same listening socket, which the other
workers keep accepting on meanwhile. Only an idle worker is recycled: nobody is cut off.
Workers idle at the same moment take turns (the worker in slot k waits k x STAGGER_S
longer), so that a successor, which takes about 2 s to start, is serving before the next
worker stops.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from twisted.internet import tcp

from rooms.server import memory

logger = logging.getLogger(__name__)

CHECK_INTERVAL_S = 1.0
STAGGER_S = 5.0


@dataclass
class Recycling:
    """When to recycle: `growth` (a fraction of the start-up RSS; 0 never) once idle for
    `idle_s` seconds, plus the turn of the supervisor's `slot`. `requested` tells the
    worker's entry point to exit with RECYCLE_EXIT_CODE."""

    growth: float
    idle_s: float
    slot: int = 0
    requested: bool = False

    def due(self, start_kb: int, rss_kb: int, idle_for: float) -> bool:
        waited = idle_for >= self.idle_s + self.slot * STAGGER_S
        return self.growth > 0 and waited and rss_kb > start_kb * (1 + self.growth)


def open_connections(reactor: Any) -> int:
    """The TCP connections this worker's reactor serves (its listening port excluded),
    whether reading or only writing."""
    transports = set(reactor.getReaders()) | set(reactor.getWriters())
    return sum(isinstance(transport, tcp.Server) for transport in transports)


async def recycle_when_idle(
    recycling: Recycling,
    reactor: Any,
    sockets: Callable[[], int],
    check_interval: float = CHECK_INTERVAL_S,
) -> None:
    """Watch this worker from its start-up RSS on; stop the reactor once recycling is due.
    `sockets`: the Socket.IO sockets the worker holds."""
    start_kb = memory.rss_kb()
    if start_kb is None:  # no /proc: nothing to compare with
        return
    idle_since: float | None = None
    while True:
        await asyncio.sleep(check_interval)
        if sockets() or open_connections(reactor):
            idle_since = None
            continue
        now = time.monotonic()
        idle_since = idle_since if idle_since is not None else now
        rss_kb = memory.rss_kb() or 0
        if recycling.due(start_kb, rss_kb, now - idle_since):
            logger.info(
                "recycling this idle worker: RSS %d MB, %d MB at start-up "
                "(WORKER_RECYCLE_RSS_GROWTH %.2f)",
                rss_kb // 1024,
                start_kb // 1024,
                recycling.growth,
            )
            recycling.requested = True
            reactor.stop()
            return
