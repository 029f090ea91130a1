"""Starting and stopping this process's WorkerNode.

Daphne has no ASGI lifespan support, so the node is started two ways, both idempotent:
- under daphne (plain `daphne ...asgi:application` or `runcluster`), as soon as the reactor
  runs (`reactor.callWhenRunning`), so a worker is in the cluster before its first request
  and even if it never gets one; it leaves on the reactor's shutdown (SIGTERM/SIGINT);
- under any other server or in tests, on the first scope (`StartNodeOnFirstScope`), which
  holds that scope until the node is ready.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import sys
from typing import Any

from asgiref.typing import ASGIReceiveCallable, ASGISendCallable, Scope
from channels.layers import get_channel_layer
from django.conf import settings

from rooms import memory
from rooms.directory import ClusterUnavailable, LocalDirectory, RedisDirectory
from rooms.node import WorkerNode
from rooms.publisher import RedisPublisher
from rooms.subscriber import RedisSubscriber

logger = logging.getLogger(__name__)

_node: WorkerNode | None = None
_starting: asyncio.Future[WorkerNode] | None = None
_loop: asyncio.AbstractEventLoop | None = None
_trimming: asyncio.Future[None] | None = None


def build_node() -> WorkerNode:
    layer = get_channel_layer()
    if not settings.REDIS_URLS:
        return WorkerNode(
            layer=layer,
            directory=LocalDirectory(),
            gather_deadline=settings.CLUSTER_GATHER_DEADLINE,
            janitor_interval=settings.CLUSTER_JANITOR_INTERVAL,
        )
    return WorkerNode(
        layer=layer,
        directory=RedisDirectory(
            settings.REDIS_URLS, prefix=settings.CHANNEL_PREFIX, ttl=settings.CLUSTER_WORKER_TTL
        ),
        publisher=RedisPublisher(layer, settings.REDIS_URLS),
        subscriber=RedisSubscriber(layer, settings.REDIS_URLS),
        gather_deadline=settings.CLUSTER_GATHER_DEADLINE,
        janitor_interval=settings.CLUSTER_JANITOR_INTERVAL,
    )


async def current_node() -> WorkerNode:
    """This process's started node; the first caller on an event loop starts it."""
    global _node, _starting, _loop
    loop = asyncio.get_running_loop()
    if _loop is not loop:  # a new loop (each test has its own): start afresh on it
        _node, _starting, _loop = None, None, loop
    if _node is not None:
        return _node
    if _starting is None:
        _starting = loop.create_future()
        node = build_node()
        try:
            await node.start()
        except Exception as exc:
            error = ClusterUnavailable(f"cannot join the cluster: {exc}")
            _starting.set_exception(error)
            _starting.exception()  # retrieved: a later caller retries with a fresh start
            _starting = None
            raise error from exc
        _node = node
        _starting.set_result(node)
        return node
    return await asyncio.shield(_starting)


async def stop_node() -> None:
    global _node, _starting
    node, _node, _starting = _node, None, None
    if node is not None:
        await node.stop()


def install_daphne_hooks() -> None:
    """Join the cluster when daphne's reactor starts (then tune the collector and start
    trimming memory); leave when it shuts down. From now on simple requests for the
    cluster's endpoints skip Twisted's HTTP (rooms.fast_http), writes on daphne's TCP
    connections are batched per loop turn (rooms.tcp_writes) and autobahn skips building
    its unused debug-log arguments (rooms.autobahn_logs), Twisted its unseen access-log line
    (rooms.twisted_access_log); closed WebSocket connections no longer leave reference
    cycles behind (rooms.connection_cycles)."""
    if "daphne.server" not in sys.modules:
        return
    from twisted.internet import defer, reactor

    from rooms import autobahn_logs, connection_cycles, fast_http, tcp_writes, twisted_access_log

    fast_http.install(reactor)
    tcp_writes.install()
    autobahn_logs.install()
    connection_cycles.install()
    twisted_access_log.install()

    async def start() -> None:
        try:
            await current_node()
        except Exception as exc:  # Redis down at start: the first scope retries
            logger.warning("could not join the cluster at start-up: %s", exc)
        tune_garbage_collector()
        if settings.WORKER_MALLOC_TRIM_INTERVAL > 0:
            global _trimming
            _trimming = asyncio.ensure_future(trim_memory(settings.WORKER_MALLOC_TRIM_INTERVAL))

    twisted: Any = reactor
    twisted.callWhenRunning(lambda: asyncio.ensure_future(start()))
    twisted.addSystemEventTrigger(
        "before", "shutdown", lambda: defer.Deferred.fromFuture(asyncio.ensure_future(stop_node()))
    )


def tune_garbage_collector() -> None:
    """Freeze the start-up heap (about 100k objects: modules, Django, Twisted) out of every
    later collection, which then only walks what the worker's connections made, and apply
    WORKER_GC_THRESHOLDS."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*settings.WORKER_GC_THRESHOLDS)


async def trim_memory(interval: float) -> None:
    """Every interval, hand glibc's free heap pages back (rooms.memory), off the loop's
    thread: malloc_trim releases the GIL and took 0.3 ms at the median, 3 ms at most."""
    while True:
        await asyncio.sleep(interval)
        await asyncio.to_thread(memory.trim)


class StartNodeOnFirstScope:
    """ASGI middleware: no scope is served before this process has joined the cluster."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        if scope["type"] in ("http", "websocket") and _node is None:
            try:
                await current_node()
            except Exception as exc:
                logger.warning("cluster not joined yet: %s", exc)
        await self.app(scope, receive, send)
