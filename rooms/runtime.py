"""The composition root: this process's WorkerNode built from settings, and the ASGI
middleware that hands it to every scope.

The only module that knows every layer: the bus (Redis or in-process), the cluster, the
codec whose `encode_event` the node is given, and the process figures /workers reports.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from typing import Any

from asgiref.typing import ASGIReceiveCallable, ASGISendCallable
from django.conf import settings

from rooms.bus import blocking
from rooms.bus.connection import RedisTls
from rooms.bus.local import LocalBus
from rooms.bus.names import BusNames
from rooms.bus.publisher import RedisPublisher
from rooms.bus.subscriber import RedisSubscriber
from rooms.cluster import events
from rooms.cluster.holder import NodeHolder
from rooms.cluster.membership import LocalDirectory, RedisDirectory
from rooms.cluster.names import group_for_room
from rooms.cluster.node import WorkerNode
from rooms.server import memory, tuning
from rooms.socketio import codec

logger = logging.getLogger(__name__)


def bus_names() -> BusNames:
    return BusNames(settings.CHANNEL_PREFIX)


def redis_tls() -> RedisTls:
    """How rediss:// servers are trusted (REDIS_TLS_VERIFY, REDIS_TLS_CA_FILE)."""
    return RedisTls(verify=settings.REDIS_TLS_VERIFY, ca_file=settings.REDIS_TLS_CA_FILE or None)


def process_stats() -> dict[str, Any]:
    """What /workers shows of a worker's process beyond its sockets (staff only)."""
    loop_type = type(asyncio.get_running_loop())
    return {
        "gc": {
            "thresholds": gc.get_threshold(),
            "frozen": gc.get_freeze_count(),
            "collections": [generation["collections"] for generation in gc.get_stats()],
        },
        "memory": memory.stats(),
        "event_loop": f"{loop_type.__module__}.{loop_type.__qualname__}",
        "server_tuning": sorted(tuning.active),
    }


def build_node() -> WorkerNode:
    common: dict[str, Any] = {
        "encode_event": codec.encode_event,
        "gather_deadline": settings.CLUSTER_GATHER_DEADLINE,
        "janitor_interval": settings.CLUSTER_JANITOR_INTERVAL,
        "process_stats": process_stats,
    }
    if not settings.REDIS_URLS:
        bus = LocalBus()
        return WorkerNode(publisher=bus, subscriber=bus, directory=LocalDirectory(), **common)
    urls, names, tls = settings.REDIS_URLS, bus_names(), redis_tls()
    cap = settings.BUS_MAX_OUTGOING_BYTES
    return WorkerNode(
        publisher=RedisPublisher(urls, names, tls=tls, max_outgoing=cap),
        subscriber=RedisSubscriber(urls, names, tls=tls, max_outgoing=cap),
        directory=RedisDirectory(
            urls, prefix=settings.CHANNEL_PREFIX, ttl=settings.CLUSTER_WORKER_TTL, tls=tls
        ),
        **common,
    )


NODE = NodeHolder(build_node)
"""This process's node: started by the worker's entry point at start-up
(rooms.runner.lifecycle), or by the first scope under any other server."""


class ClusterScope:
    """ASGI middleware: every scope carries the node holder as `scope["cluster"]`; no scope
    is served before this process tried to join the cluster."""

    def __init__(self, app: Any, holder: NodeHolder = NODE) -> None:
        self.app = app
        self.holder = holder

    async def __call__(
        self, scope: dict[str, Any], receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        if scope["type"] in ("http", "websocket"):
            if self.holder.started is None:
                try:
                    await self.holder.node()
                except Exception as exc:
                    logger.warning("cluster not joined yet: %s", exc)
            scope = {**scope, "cluster": self.holder}
        await self.app(scope, receive, send)


def publish_to_cluster(message: dict[str, Any]) -> None:
    """Send a message to every worker's `cluster` group from synchronous code (a signal
    in a view's thread, the admin, a management command). Without Redis only this
    process's node can hear it, if it runs."""
    _group_send(events.CLUSTER_GROUP, message)


def emit_to_room(room: str, event: str, *args: Any) -> None:
    """Send a Socket.IO event to every socket in `room`, on every worker, from synchronous
    code: a view, a signal, a management command, any process configured with the
    cluster's REDIS_URL and CHANNEL_PREFIX.

    The sockets are not members of Channels groups, so `channel_layer.group_send` does
    not reach them; this publishes the `room.emit` message the workers' fan-out delivers
    (rooms.cluster.fanout) to the room's group on the bus. It blocks for one Redis round
    trip: from async code, call it through `asyncio.to_thread`.
    """
    _group_send(group_for_room(room), events.room_emit(room, codec.encode_event(event, *args)))


def _group_send(group: str, message: dict[str, Any]) -> None:
    if settings.REDIS_URLS:
        blocking.group_send(settings.REDIS_URLS, bus_names(), group, message, redis_tls())
        return
    node, loop = NODE.started, NODE.loop
    if node is not None and loop is not None and not loop.is_closed():
        asyncio.run_coroutine_threadsafe(node.publisher.group_send(group, message), loop)
