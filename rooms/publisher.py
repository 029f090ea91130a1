"""Channel-layer writes without the pub/sub layer's per-process lock.

channels_redis's pub/sub layer sends every PUBLISH of a process over one connection behind
one asyncio.Lock. Under a burst (1000 sockets joining one room) that queue grew past 5 s:
room events were dropped or seconds late, and roster queries waiting in the same queue
timed out (bench/README.md). Here every write is serialized by the layer itself and
published to the very Redis channel (and shard) the layer would use, so the layer's
subscribers receive it unchanged, but through a redis.asyncio client of our own, and all
writes pending while one round trip is in flight leave together in the next pipeline.
Subscriptions (group_add/discard, receive) stay with the layer.
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

import redis.asyncio as aioredis
from channels_redis.utils import _consistent_hash


class Publisher(Protocol):
    async def group_send(self, group: str, message: dict[str, Any]) -> None: ...
    async def send(self, channel: str, message: dict[str, Any]) -> None: ...


class LayerPublisher:
    """Writes straight through the layer (the in-memory layer of a single process)."""

    def __init__(self, layer: Any) -> None:
        self.layer = layer

    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        await self.layer.group_send(group, message)

    async def send(self, channel: str, message: dict[str, Any]) -> None:
        await self.layer.send(channel, message)


class _Outbox:
    """FIFO of pending PUBLISHes to one Redis server; one pipeline in flight at a time.

    A caller that stops waiting (a timeout) does not take its message back: once queued,
    a write is sent.
    """

    def __init__(self, client: aioredis.Redis) -> None:
        self.client = client
        self.pending: list[tuple[str, bytes, asyncio.Future[None]]] = []
        self.flushing = False

    async def publish(self, name: str, data: bytes) -> None:
        future = asyncio.get_running_loop().create_future()
        self.pending.append((name, data, future))
        if not self.flushing:
            self.flushing = True
            asyncio.ensure_future(self._flush())
        await asyncio.shield(future)

    async def _flush(self) -> None:
        try:
            while self.pending:
                batch, self.pending = self.pending, []
                pipe = self.client.pipeline(transaction=False)
                for name, data, _ in batch:
                    pipe.publish(name, data)
                try:
                    await pipe.execute()
                except Exception as exc:
                    for *_, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                else:
                    for *_, future in batch:
                        if not future.done():
                            future.set_result(None)
        finally:
            self.flushing = False


class RedisPublisher:
    def __init__(self, layer: Any, clients: list[aioredis.Redis]) -> None:
        self.layer = layer
        self._outboxes = [_Outbox(client) for client in clients]

    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        # the Redis channel the pub/sub layer subscribes for a group (channels-redis 4.3)
        name = self.layer._get_layer()._get_group_channel_name(group)
        await self._publish(name, message)

    async def send(self, channel: str, message: dict[str, Any]) -> None:
        await self._publish(channel, message)

    async def _publish(self, name: str, message: dict[str, Any]) -> None:
        outbox = self._outboxes[_consistent_hash(name, len(self._outboxes))]
        await outbox.publish(name, self.layer.serialize(message))
