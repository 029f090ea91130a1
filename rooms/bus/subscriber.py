"""The bus's reads: one SUBSCRIBE connection per Redis server, kept up.

A worker subscribes a channel of its own (rooms.bus.names: `<prefix>:c:...`) and the groups
it joins (`<prefix>:g:<group>`: the `cluster` group, one per room holding its sockets),
each on the server that carries the name. Every message is handed to the owner's
`on_message` (a group's to `on_group_message` with the group, when the owner listens for
those) straight from the connection's `data_received`, decoded by rooms.bus.serialization,
once and in arrival order; a payload that is not a message of ours is skipped with a
warning.

Every name stays wanted until it is unsubscribed, and a keeper re-establishes whatever a
lost connection held: Redis drops a subscriber at its pub/sub output-buffer limit
(https://redis.io/docs/latest/develop/reference/clients/#output-buffer-limits), a restart
or a network cut drops it too, and the next connection may be dropped while it is still
resubscribing. A connection that only receives cannot tell a quiet Redis from one gone
silently (a cut that sent no reset, then a Redis restart behind it): each is PINGed every
few seconds and replaced when no answer comes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from rooms.bus.connection import (
    DEFAULT_MAX_OUTGOING,
    VERIFIED,
    CommandConnection,
    RedisTls,
    ReplyError,
    open_redis_connection,
    safe_url,
)
from rooms.bus.names import BusNames, shard_index
from rooms.bus.serialization import deserialize
from rooms.metrics.series import BUS_RECONNECTS

logger = logging.getLogger(__name__)

OnMessage = Callable[[dict[str, Any]], None]
OnGroupMessage = Callable[[str, dict[str, Any]], None]

UNSUBSCRIBE_BATCH = 1000
"""Names one UNSUBSCRIBE carries (about 60 KB of room channels): a thousand sockets
leaving at once cost a few commands, and no single one is large."""


class Subscriber(Protocol):
    """Bus reads: a channel of this process's own, and the groups it joins.
    Every message reaches the `on_message` given to `listen`, once, in arrival order; a
    group's messages go to the `on_group_message` given to `listen_groups` instead, with
    the group's name, once one is given."""

    def listen(self, on_message: OnMessage) -> None: ...
    def listen_groups(self, on_group_message: OnGroupMessage) -> None: ...
    async def new_channel(self, prefix: str) -> str: ...
    async def group_add(self, group: str) -> None: ...
    async def group_discard(self, *groups: str) -> None: ...
    async def close(self) -> None: ...


class SubscribeConnection(CommandConnection):
    """One connection to one Redis server in subscribe mode.

    Messages go to `on_message(channel, data)` as they are parsed; every other reply (the
    confirmation of a SUBSCRIBE, UNSUBSCRIBE, PING or AUTH, or an error) answers the oldest
    command still waiting. `lost` is done once the connection is gone.
    """

    def __init__(
        self,
        on_message: Callable[[bytes, bytes], None],
        *,
        url: str = "",
        max_outgoing: int = DEFAULT_MAX_OUTGOING,
    ) -> None:
        super().__init__(url=url, max_outgoing=max_outgoing)
        self.on_message = on_message
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def _take(self, reply: Any) -> bool:
        if type(reply) is list and len(reply) == 3 and reply[0] == b"message":
            self.on_message(reply[1], reply[2])
            return True
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        if not self.lost.done():
            self.lost.set_result(None)


class ShardSubscriptions:
    """The wanted subscriptions on one Redis server, and the connection that holds them.

    Redis drops a subscriber's connection when it passes `client-output-buffer-limit
    pubsub` (https://redis.io/docs/latest/develop/reference/clients/#output-buffer-limits),
    and may drop the next one while it is still resubscribing. So one keeper task runs
    whenever a name is wanted and no live connection holds it: it opens a connection,
    subscribes every wanted name on it, and checks that the connection is still open
    before it calls the shard restored; a failed or already lost attempt is retried with
    backoff (0.1 s doubling to 2 s). A connection that leaves a PING (every
    `health_interval`) unanswered for `timeout` is dropped as lost.
    """

    def __init__(
        self,
        url: str,
        on_message: Callable[[bytes, bytes], None],
        timeout: float,
        health_interval: float,
        tls: RedisTls = VERIFIED,
        max_outgoing: int = DEFAULT_MAX_OUTGOING,
    ):
        self.url = url
        self.tls = tls
        self.max_outgoing = max_outgoing
        self.on_message = on_message
        self.timeout = timeout
        self.health_interval = health_interval
        self.wanted: set[bytes] = set()
        self.closed = False
        self._connection: SubscribeConnection | None = None
        self._opening: asyncio.Future[SubscribeConnection] | None = None
        self._keeper: asyncio.Task[None] | None = None
        self._watching: asyncio.Task[None] | None = None

    async def subscribe(self, name: bytes) -> None:
        """Held by Redis when this returns; raises when no connection can be had now (the
        keeper goes on trying, and subscribes the name once one is)."""
        self.wanted.add(name)
        connection = await self._connected()
        if name in self.wanted:  # not unsubscribed meanwhile
            await connection.command(b"SUBSCRIBE", name)

    def unsubscribe_now(self, names: Sequence[bytes]) -> list[asyncio.Future[Any]]:
        """No longer wanted (a reconnect will not subscribe them again), and UNSUBSCRIBE
        queued, in commands of at most UNSUBSCRIBE_BATCH names, all before this returns:
        a caller that checked the names are unused sends nothing that could overtake a
        SUBSCRIBE issued after its check. The futures complete once Redis confirmed."""
        self.wanted.difference_update(names)
        connection = self._connection
        if connection is None or connection.closed:
            return []  # a lost connection took its subscriptions with it
        return [
            connection.command(b"UNSUBSCRIBE", *batch, replies=len(batch))
            for batch in (
                names[i : i + UNSUBSCRIBE_BATCH] for i in range(0, len(names), UNSUBSCRIBE_BATCH)
            )
        ]

    async def close(self) -> None:
        self.closed = True
        self.wanted.clear()
        tasks = (self._keeper, self._opening, self._watching)
        pending = [task for task in tasks if task is not None]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        if self._connection is not None:
            self._connection.close()

    async def _connected(self) -> SubscribeConnection:
        """The live connection, once it holds every wanted name; raises when the attempt
        under way fails or its connection is lost before it is handed out."""
        if self.closed:
            raise ConnectionError("subscriber closed")
        if self._connection is not None and not self._connection.closed:
            return self._connection
        if self._opening is None:
            self._opening = opening = asyncio.ensure_future(self._open())
            opening.add_done_callback(self._attempted)
        connection = await asyncio.shield(self._opening)
        if connection.closed:
            raise ConnectionError("connection to Redis lost while subscribing")
        return connection

    async def _open(self) -> SubscribeConnection:
        async with asyncio.timeout(self.timeout):
            connection = await open_redis_connection(
                self.url,
                lambda: SubscribeConnection(
                    self.on_message, url=self.url, max_outgoing=self.max_outgoing
                ),
                self.tls,
            )
            try:
                names = set(self.wanted)
                await asyncio.gather(*(connection.command(b"SUBSCRIBE", n) for n in names))
                stale = names - self.wanted  # unsubscribed while this was under way
                if stale:
                    await connection.command(b"UNSUBSCRIBE", *stale, replies=len(stale))
            except BaseException:
                connection.close()
                raise
        if self.closed:
            connection.close()
            raise ConnectionError("subscriber closed")
        self._connection = connection
        # once lost (at any time from now, even before a caller sees it), the keeper runs
        connection.lost.add_done_callback(lambda _: self._keep_up())
        self._watching = asyncio.ensure_future(self._watch(connection))
        return connection

    def _attempted(self, opening: asyncio.Future[SubscribeConnection]) -> None:
        self._opening = None
        if opening.cancelled() or opening.exception() is not None:  # retrieved, and retried
            self._keep_up()

    def _keep_up(self) -> None:
        """Start the keeper unless it runs: it ends only once a live connection holds
        every wanted name (or none is wanted), and is started again when that is lost."""
        if self.closed or not self.wanted:
            return
        if self._keeper is None or self._keeper.done():
            self._keeper = asyncio.ensure_future(self._keep())

    async def _keep(self) -> None:
        delay = 0.1
        while not self.closed and self.wanted:
            connection = self._connection
            if connection is not None and not connection.closed:
                return  # its loss starts the keeper again (connection.lost)
            try:
                await self._connected()
                logger.info("subscriptions on %s restored", safe_url(self.url))
                BUS_RECONNECTS.labels("subscribe").inc()
                continue  # checked again: it may have been lost on the way here
            except (OSError, TimeoutError, ReplyError) as exc:
                logger.warning("cannot resubscribe on %s: %s", safe_url(self.url), exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)

    async def _watch(self, connection: SubscribeConnection) -> None:
        while not connection.closed:
            await asyncio.sleep(self.health_interval)
            if connection.closed:
                return
            try:
                async with asyncio.timeout(self.timeout):
                    await connection.command(b"PING")
            except (OSError, TimeoutError, ReplyError) as exc:
                if connection.closed:
                    return  # lost meanwhile: the keeper has it
                logger.warning(
                    "%s did not answer a PING (%r): reconnecting", safe_url(self.url), exc
                )
                connection.abort()
                return


class RedisSubscriber:
    """Subscriptions spread over the Redis servers by rooms.bus.names.shard_index."""

    def __init__(
        self,
        urls: list[str],
        names: BusNames,
        *,
        timeout: float = 1.0,
        health_interval: float = 3.0,
        tls: RedisTls = VERIFIED,
        max_outgoing: int = DEFAULT_MAX_OUTGOING,
    ) -> None:
        self.names = names
        self._on_message: OnMessage | None = None
        self._on_group_message: OnGroupMessage | None = None
        self._shards = [
            ShardSubscriptions(url, self._received, timeout, health_interval, tls, max_outgoing)
            for url in urls
        ]

    def listen(self, on_message: OnMessage) -> None:
        self._on_message = on_message

    def listen_groups(self, on_group_message: OnGroupMessage) -> None:
        """Messages of groups go to `on_group_message(group, message)` instead: a layer
        hands them to the group's members, a node needs the room a message is for."""
        self._on_group_message = on_group_message

    async def new_channel(self, kind: str) -> str:
        """A channel of this process's own, subscribed."""
        channel = self.names.new_channel(kind)
        await self.channel_add(channel)
        return channel

    async def channel_add(self, channel: str) -> None:
        """Subscribe a channel by its Redis name (rooms.bus.names)."""
        await self._shard(channel).subscribe(channel.encode())

    async def group_add(self, group: str) -> None:
        name = self._group_channel(group)
        await self._shard(name).subscribe(name.encode())

    async def group_discard(self, *groups: str) -> None:
        """Every group left at once: one UNSUBSCRIBE per shard for up to UNSUBSCRIBE_BATCH
        of them, all queued before the first await (ShardSubscriptions.unsubscribe_now)."""
        by_shard: dict[int, list[bytes]] = {}
        for group in groups:
            name = self._group_channel(group)
            by_shard.setdefault(shard_index(name, len(self._shards)), []).append(name.encode())
        confirmed = [
            future
            for index, names in by_shard.items()
            for future in self._shards[index].unsubscribe_now(names)
        ]
        await asyncio.gather(*confirmed)

    def discard_soon(self, group: str) -> None:
        """Leave a group without waiting for Redis to confirm it."""
        name = self._group_channel(group)
        self._shard(name).unsubscribe_now([name.encode()])

    async def close(self) -> None:
        await asyncio.gather(*(shard.close() for shard in self._shards))

    def _group_channel(self, group: str) -> str:
        return self.names.group(group)

    def _shard(self, name: str) -> ShardSubscriptions:
        return self._shards[shard_index(name, len(self._shards))]

    def _received(self, channel: bytes, data: bytes) -> None:
        """Called from the connection's data_received: nothing may escape, or asyncio would
        close the connection (and with it every subscription) over one bad message."""
        try:
            message = deserialize(data)
        except ValueError as exc:  # not a message of ours: someone else publishing here
            logger.warning("ignoring undecodable message on %r: %s", channel, exc)
            return
        try:
            group = self.names.group_of(channel.decode()) if self._on_group_message else None
            if group is not None and self._on_group_message is not None:
                self._on_group_message(group, message)
            elif self._on_message is not None:
                self._on_message(message)
        except Exception:
            logger.exception("handling a message on %r failed", channel)
