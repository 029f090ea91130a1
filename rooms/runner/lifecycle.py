"""A worker's start and stop under daphne, which has no ASGI lifespan support.

When the reactor runs, the worker joins the cluster (so it is listed before its first
request, even if it never gets one), then freezes its start-up heap out of the collector,
starts trimming memory and watching whether it is due to be recycled
(rooms.runner.recycling); it leaves the cluster on the reactor's shutdown (SIGTERM/SIGINT,
or a recycling). Under any other server the node starts on the first scope instead
(rooms.runtime.ClusterScope).
"""

from __future__ import annotations

import asyncio
import gc
import logging
from typing import Any

from django.conf import settings

from rooms.cluster.holder import NodeHolder
from rooms.runner.recycling import Recycling, recycle_when_idle
from rooms.server import memory

logger = logging.getLogger(__name__)

_background: set[asyncio.Task[None]] = set()  # held: the loop keeps only weak references


def run_with_reactor(reactor: Any, holder: NodeHolder, recycling: Recycling) -> None:
    """Join the cluster when the reactor starts; leave when it shuts down."""
    from twisted.internet import defer

    reactor.callWhenRunning(lambda: _keep(start(holder, reactor, recycling)))

    def leave() -> Any:
        return defer.Deferred.fromFuture(asyncio.ensure_future(holder.stop()))

    reactor.addSystemEventTrigger("before", "shutdown", leave)


async def start(holder: NodeHolder, reactor: Any, recycling: Recycling) -> None:
    try:
        await holder.node()
    except Exception as exc:  # Redis down at start: the first scope retries
        logger.warning("could not join the cluster at start-up: %s", exc)
    tune_garbage_collector()
    if settings.WORKER_MALLOC_TRIM_INTERVAL > 0:
        _keep(trim_memory(settings.WORKER_MALLOC_TRIM_INTERVAL))
    if recycling.growth > 0:
        _keep(recycle_when_idle(recycling, reactor, sockets=lambda: _sockets(holder)))


def _sockets(holder: NodeHolder) -> int:
    node = holder.started
    return len(node.registry) if node is not None else 0


def _keep(coroutine: Any) -> None:
    task = asyncio.ensure_future(coroutine)
    _background.add(task)
    task.add_done_callback(_background.discard)


def tune_garbage_collector() -> None:
    """Freeze the start-up heap (about 100k objects: modules, Django, Twisted) out of every
    later collection, which then only walks what the worker's connections made, and apply
    WORKER_GC_THRESHOLDS."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*settings.WORKER_GC_THRESHOLDS)


async def trim_memory(interval: float) -> None:
    """Every interval, hand glibc's free heap pages back (rooms.server.memory), off the
    loop's thread: malloc_trim releases the GIL and took 0.3 ms at the median, 3 ms at most."""
    while True:
        await asyncio.sleep(interval)
        await asyncio.to_thread(memory.trim)
