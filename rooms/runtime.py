"""The composition root: this process's WorkerNode built from settings, and the ASGI
middleware that hands it to every scope.

The only module that knows every layer: the bus (Redis or in-process, or any Channels
layer through rooms.cluster.layer_bus), the cluster, the codec whose `encode_event` the node
is given, and the process figures /workers reports.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import uuid
from typing import Any

import channels
from asgiref.sync import async_to_sync
from asgiref.typing import ASGIReceiveCallable, ASGISendCallable
from channels.layers import channel_layers, get_channel_layer
from django.conf import settings
from django.utils.module_loading import import_string

from identity_playground import log_filters
from rooms.bus import blocking
from rooms.bus.connection import RedisTls
from rooms.bus.directory import RedisDirectory
from rooms.bus.layer import BUS_EXTENSION
from rooms.bus.local import PROCESS_BUS
from rooms.bus.names import BusNames
from rooms.bus.publisher import RedisPublisher
from rooms.bus.subscriber import RedisSubscriber
from rooms.cluster import events
from rooms.cluster.holder import NodeHolder
from rooms.cluster.layer_bus import LayerBus, ask_through_layer
from rooms.cluster.membership import LocalDirectory
from rooms.cluster.names import room_group
from rooms.cluster.node import WorkerNode
from rooms.http import polling
from rooms.server import memory, tuning
from rooms.socketio import codec, upgrade

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


def on_the_bus() -> bool:
    """Whether the channel layer's class (CHANNEL_LAYER_BACKEND) declares the bus's extension
    (rooms.bus.layer.BUS_EXTENSION): the node then uses the bus directly; any other layer
    only through the layer API (rooms.cluster.layer_bus). The class is asked, not an
    instance: channels_redis's pub/sub layer answers every attribute it lacks from the
    running event loop's layer, and a view's thread has no running loop."""
    backend = import_string(settings.CHANNEL_LAYER_BACKEND)
    return BUS_EXTENSION in getattr(backend, "extensions", ())


def redis_directory(*, counts_subscribers: bool) -> RedisDirectory:
    return RedisDirectory(
        settings.REDIS_URLS,
        prefix=settings.CHANNEL_PREFIX,
        ttl=settings.CLUSTER_WORKER_TTL,
        tls=redis_tls(),
        counts_subscribers=counts_subscribers,
    )


def build_node() -> WorkerNode:
    node = _new_node()
    log_filters.set_procid(node.procid)  # every log line of this process names it
    # long-polling requests for this worker's sessions that landed on another worker
    node.requests.serve(polling.FORWARDED, polling.serve_forwarded)
    upgrade.serve_upgrades(node)  # WebSockets upgrading sessions across workers
    return node


def _new_node() -> WorkerNode:
    common: dict[str, Any] = {
        "encode_event": codec.encode_event_frame,
        "gather_deadline": settings.CLUSTER_GATHER_DEADLINE,
        "janitor_interval": settings.CLUSTER_JANITOR_INTERVAL,
        "departures_max_queued": settings.BUS_MAX_HELD_DEPARTURES,
        "process_stats": process_stats,
    }
    if not settings.REDIS_URLS:
        bus = PROCESS_BUS
        return WorkerNode(publisher=bus, subscriber=bus, directory=LocalDirectory(), **common)
    if not on_the_bus():
        layer_bus = LayerBus(get_channel_layer())
        directory = redis_directory(counts_subscribers=False)
        return WorkerNode(publisher=layer_bus, subscriber=layer_bus, directory=directory, **common)
    urls, names, tls = settings.REDIS_URLS, bus_names(), redis_tls()
    cap = settings.BUS_MAX_OUTGOING_BYTES
    return WorkerNode(
        publisher=RedisPublisher(urls, names, tls=tls, max_outgoing=cap),
        subscriber=RedisSubscriber(urls, names, tls=tls, max_outgoing=cap),
        directory=redis_directory(counts_subscribers=True),
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
    code: the Channels `group_send` of README "Reaching sockets from Django code"."""
    async_to_sync(get_channel_layer().group_send)(
        room_group(room), events.socketio_emit(event, *args)
    )


def _group_send(group: str, message: dict[str, Any]) -> None:
    if settings.REDIS_URLS and not on_the_bus():
        async_to_sync(get_channel_layer().group_send)(group, message)
        return
    if settings.REDIS_URLS:
        blocking.group_send(settings.REDIS_URLS, bus_names(), group, message, redis_tls())
        return
    node, loop = NODE.started, NODE.loop
    if node is not None and loop is not None and not loop.is_closed():
        asyncio.run_coroutine_threadsafe(node.publisher.group_send(group, message), loop)


def sockets_per_user() -> dict[str, int] | None:
    """How many sockets each connected user has across the whole cluster, from synchronous
    code (the admin's "online now"); None when the cluster cannot be asked (Redis down)."""
    parts = _ask_cluster(events.SOCKETS_PER_USER, {})
    if parts is None:
        return None
    counts: dict[str, int] = {}
    for part in parts:
        if isinstance(part, dict):
            for id_user, count in part.items():
                counts[id_user] = counts.get(id_user, 0) + int(count)
    return counts


def rename_reach(id_user: str) -> int | None:
    """How many room events a rename of `id_user` makes the cluster publish: each worker
    forwards it once to each room of that user's sockets there (WorkerNode._forward_rename).
    For the rename fan-out budget per address (users.views); None when the cluster cannot
    be asked."""
    parts = _ask_cluster(events.RENAME_REACH, {"id_user": id_user})
    if parts is None:
        return None
    return sum(part for part in parts if isinstance(part, int))


def _ask_cluster(kind: str, args: dict[str, Any]) -> list[Any] | None:
    """Every worker's answer to a cluster query, from synchronous code; None when the
    cluster cannot be asked (Redis down).

    The same scatter-gather as a roster (rooms.cluster.gather), asked over the bus with a
    blocking client (rooms.bus.blocking.ask_group): under runcluster a view runs in a
    worker's Django thread while that worker's node lives on the event loop, and a blocking
    client needs nothing from that loop. It waits at most CLUSTER_GATHER_DEADLINE for the
    workers, and redis-py's 1 s socket timeouts bound a Redis that does not answer. On a
    layer other than the bus's it is asked through that layer (_ask_through_layer). Without
    Redis the cluster is this process: its node is asked on its own loop.
    """
    deadline = settings.CLUSTER_GATHER_DEADLINE
    try:
        if settings.REDIS_URLS and not on_the_bus():
            replies = async_to_sync(_ask_through_layer)(kind, args, deadline)
            return [r["payload"] for r in replies if "payload" in r]
        if settings.REDIS_URLS:
            replies, _reached = blocking.ask_group(
                settings.REDIS_URLS,
                bus_names(),
                events.CLUSTER_GROUP,
                lambda reply_to: events.query(
                    kind, args, reply_to=reply_to, origin=f"ask-{uuid.uuid4().hex}"
                ),
                timeout=deadline,
                tls=redis_tls(),
            )
            return [r["payload"] for r in replies if "payload" in r]
        return _ask_local_node(kind, args, deadline)
    except Exception as exc:  # redis-py's errors, OSError, a node that does not answer
        logger.warning("%s: the cluster did not answer: %r", kind, exc)
        return None


async def _ask_through_layer(
    kind: str, args: dict[str, Any], deadline: float
) -> list[dict[str, Any]]:
    """The query on a layer instance of its own: channels_redis's RedisChannelLayer refuses
    a second event loop receiving on one instance, and the node's loop receives on the
    process's."""
    layer = channel_layers.make_backend(channels.DEFAULT_CHANNEL_LAYER)
    directory = redis_directory(counts_subscribers=False)
    try:
        return await ask_through_layer(
            layer,
            directory,
            lambda reply_to: events.query(
                kind, args, reply_to=reply_to, origin=f"ask-{uuid.uuid4().hex}"
            ),
            deadline,
        )
    finally:
        await directory.close()
        if hasattr(layer, "close_pools"):  # RedisChannelLayer; the others close with the loop
            await layer.close_pools()


def _ask_local_node(kind: str, args: dict[str, Any], deadline: float) -> list[Any]:
    node, loop = NODE.started, NODE.loop
    if node is None or loop is None or loop.is_closed():
        return []  # no node in this process: no sockets
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:  # waiting here would block the loop the answer needs
        raise RuntimeError("called on the node's own event loop: use node.gather there")
    future = asyncio.run_coroutine_threadsafe(node.gather(kind, **args), loop)
    replies, _expected = future.result(timeout=deadline + 1.0)
    return list(replies.values())
