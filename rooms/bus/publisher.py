"""The bus's writes: PUBLISH on one lean connection per Redis server.

A message (a dict, rooms.bus.serialization) is published on the Redis channel that
rooms.bus.names gives its group or worker channel, on the server (shard) that carries that
name, so the subscribers of rooms.bus.subscriber receive it. Every worker of a cluster
writes through one connection per shard that speaks just PUBLISH (and AUTH once):
- every write of one event-loop turn leaves in one write() at its end, and Redis answers
  them in order with the number of subscriptions each reached (which the scatter-gather
  of rooms.cluster.gather compares with the live workers);
- no lock and no per-command round trip: a burst of writes (a thousand sockets joining
  one room) queues on the connection instead of behind one another;
- what is queued is capped (rooms.bus.connection): a Redis that stops reading fails the
  write with RedisNotReading and the connection is dropped; the next write opens a new one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any, Protocol

from rooms.bus.connection import (
    DEFAULT_MAX_OUTGOING,
    VERIFIED,
    CommandConnection,
    RedisTls,
    ReplyError,
    open_redis_connection,
)
from rooms.bus.names import BusNames, shard_index
from rooms.bus.serialization import serialize
from rooms.metrics.series import BUS_RECONNECTS

logger = logging.getLogger(__name__)


class Publisher(Protocol):
    """Bus writes; each returns how many subscriptions Redis delivered the
    message to, or None where that is unknown."""

    async def group_send(self, group: str, message: dict[str, Any]) -> int | None: ...
    async def send(self, channel: str, message: dict[str, Any]) -> int | None: ...
    async def group_send_many(self, messages: Sequence[tuple[str, dict[str, Any]]]) -> list[bool]:
        """Publish every (group, message) at once; for each, whether Redis took it (False:
        no connection could be had or it was lost, for the caller to try again later)."""
        ...

    def send_soon(self, channel: str, message: dict[str, Any]) -> bool:
        """Queue the write now, without waiting for Redis; False when that cannot be done
        here and now (no open connection) and the caller must `send` instead."""
        ...


class PublishConnection(CommandConnection):
    """One connection to one Redis server that only PUBLISHes (and AUTHs once).

    Commands queued in one loop turn go out in one write() at its end; each caller gets its
    own reply (the number of subscribers reached) in order. When the connection drops,
    every pending caller gets a ConnectionError and the owner opens a new connection for
    the next write.
    """

    def __init__(self, *, url: str = "", max_outgoing: int = DEFAULT_MAX_OUTGOING) -> None:
        super().__init__(url=url, max_outgoing=max_outgoing)
        self._outgoing: list[bytes] = []
        self._outgoing_size = 0

    def queued_bytes(self) -> int:
        return super().queued_bytes() + self._outgoing_size

    def _queue(self, data: bytes) -> None:
        if not self._outgoing:
            asyncio.get_running_loop().call_soon(self._flush)
        self._outgoing.append(data)
        self._outgoing_size += len(data)

    def _flush(self) -> None:
        if self._outgoing and self.transport is not None and not self.closed:
            self.transport.write(b"".join(self._outgoing))
        self._outgoing = []
        self._outgoing_size = 0

    def _fail(self, error: Exception) -> None:
        super()._fail(error)
        self._outgoing = []
        self._outgoing_size = 0


class RedisPublisher:
    """PUBLISH on the shard of each name (rooms.bus.names.shard_index), over one
    PublishConnection per Redis server, opened on the first write and after a loss."""

    def __init__(
        self,
        urls: list[str],
        names: BusNames,
        *,
        timeout: float = 1.0,
        tls: RedisTls = VERIFIED,
        max_outgoing: int = DEFAULT_MAX_OUTGOING,
    ) -> None:
        self.names = names
        self._urls = urls
        self._timeout = timeout
        self._tls = tls
        self._max_outgoing = max_outgoing
        self._connections: list[PublishConnection | None] = [None] * len(urls)
        self._opening: list[asyncio.Future[PublishConnection] | None] = [None] * len(urls)

    async def group_send(self, group: str, message: dict[str, Any]) -> int:
        return await self._publish(self.names.group(group), message)

    async def send(self, channel: str, message: dict[str, Any]) -> int:
        return await self._publish(channel, message)

    async def group_send_many(self, messages: Sequence[tuple[str, dict[str, Any]]]) -> list[bool]:
        """Pipelined: every PUBLISH is queued before the first reply is awaited, so a
        thousand messages cost one write and one wait, not a thousand round trips."""
        names = [self.names.group(group).encode() for group, _ in messages]
        shards = [shard_index(name.decode(), len(self._urls)) for name in names]
        connections: dict[int, PublishConnection | None] = {}
        for shard in set(shards):
            connection = self._connections[shard]
            if connection is None or connection.closed:
                lost = connection is not None
                try:
                    connection = await self._connect(shard)
                except (OSError, TimeoutError, ReplyError):  # Redis away: tried again later
                    connection = None
                if lost and connection is not None:
                    BUS_RECONNECTS.labels("publish").inc()
            connections[shard] = connection
        published: list[asyncio.Future[Any] | None] = []
        for name, shard, (_, message) in zip(names, shards, messages, strict=True):
            connection = connections[shard]
            if connection is None:
                published.append(None)
            else:
                published.append(connection.command(b"PUBLISH", name, serialize(message)))
        await asyncio.gather(*(f for f in published if f is not None), return_exceptions=True)
        return [f is not None and f.exception() is None for f in published]

    def send_soon(self, channel: str, message: dict[str, Any]) -> bool:
        connection = self._connections[shard_index(channel, len(self._urls))]
        if connection is None or connection.closed:
            return False
        publishing = connection.command(b"PUBLISH", channel.encode(), serialize(message))
        publishing.add_done_callback(_log_failure)
        return True

    async def close(self) -> None:
        """Close every connection (what is queued is still written); the next write opens
        a new one."""
        for opening in self._opening:
            if opening is not None:
                opening.cancel()
        for connection in self._connections:
            if connection is not None:
                connection.close()
        self._connections = [None] * len(self._urls)

    def queued_bytes(self) -> int:
        """What is queued for Redis over every connection, not yet read by it."""
        return sum(c.queued_bytes() for c in self._connections if c is not None and not c.closed)

    async def _publish(self, name: str, message: dict[str, Any]) -> int:
        shard = shard_index(name, len(self._urls))
        data = serialize(message)
        connection = self._connections[shard]
        if connection is None or connection.closed:
            connection = await self._connect(shard)
        return int(await connection.command(b"PUBLISH", name.encode(), data))

    async def _connect(self, shard: int) -> PublishConnection:
        """One connection attempt per shard at a time; concurrent writers share it."""
        opening = self._opening[shard]
        if opening is None:
            opening = asyncio.ensure_future(self._open(self._urls[shard]))
            self._opening[shard] = opening
            opening.add_done_callback(lambda _: self._opened(shard))
        return await asyncio.shield(opening)

    async def _open(self, url: str) -> PublishConnection:
        def connection() -> PublishConnection:
            return PublishConnection(url=url, max_outgoing=self._max_outgoing)

        async with asyncio.timeout(self._timeout):
            return await open_redis_connection(url, connection, self._tls)

    def _opened(self, shard: int) -> None:
        opening = self._opening[shard]
        self._opening[shard] = None
        if opening is not None and not opening.cancelled() and opening.exception() is None:
            self._connections[shard] = opening.result()


def _log_failure(publishing: asyncio.Future[Any]) -> None:
    """The outcome of a write nobody awaits: logged when it failed (and so retrieved)."""
    if not publishing.cancelled() and publishing.exception() is not None:
        logger.warning("bus write failed: %s", publishing.exception())
