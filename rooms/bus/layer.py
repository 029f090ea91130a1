"""The bus as a Channels channel layer: `CHANNEL_LAYERS["default"]` whenever REDIS_URL is set.

The layer of channels' docs/channel_layer_spec.rst (https://github.com/django/channels),
over the bus's own Redis connections (rooms.bus.publisher, rooms.bus.subscriber) and names
(rooms.bus.names), so a Channels `group_send` and the cluster's own messages travel the same
way and meet the same subscribers:
- process-specific channels (`specific.<client>!<local>`): one subscription per event loop
  serves all of its channels; a message is one PUBLISH carrying its channel's full name;
- groups: one subscription per group with a member in this event loop, one PUBLISH per
  `group_send` however many members and processes it reaches;
- normal channels (no `!`, e.g. a `runworker` channel): a Redis list, so each message
  reaches one reader in the whole cluster and a send over capacity is refused there, as
  channels_redis's RedisChannelLayer does.

Capacity on pub/sub has no way back to the sender: a send to a process-specific channel of
this event loop raises ChannelFull at capacity, one to another process's channel is dropped
there (as every `group_send` over capacity is, per the spec). A message not received
within `expiry` seconds is dropped, and a channel that let one expire is taken out of its
groups: its consumer is gone (InMemoryChannelLayer does the same).

Connections belong to an event loop, and `async_to_sync` runs a loop of its own per
thread: the layer keeps one set per running loop and closes it with its loop, as
channels_redis's RedisPubSubChannelLayer does.
"""

from __future__ import annotations

import asyncio
import logging
import time
import types
import uuid
import weakref
from collections import deque
from typing import Any, cast

import redis.asyncio
from channels.exceptions import ChannelFull
from channels.layers import BaseChannelLayer

from rooms.bus.connection import DEFAULT_MAX_OUTGOING, RedisTls, redis_py_options
from rooms.bus.names import BusNames, shard_index
from rooms.bus.publisher import RedisPublisher
from rooms.bus.serialization import deserialize, serialize
from rooms.bus.subscriber import RedisSubscriber

logger = logging.getLogger(__name__)

BUS_EXTENSION = "rooms.bus"
"""The layer's extension (channels' spec: `extensions`) saying that its Redis servers, names
and TLS options also carry the bus's own publisher and subscriber (rooms.bus.publisher,
rooms.bus.subscriber), with what they give beyond the layer API: how many processes a
PUBLISH reached, writes queued without waiting. The cluster's node uses them when its layer
declares it, and only the layer API otherwise (rooms.cluster.layer_bus)."""

CHANNEL_KEY = "__asgi_channel__"
"""The key that carries a process-specific message's channel (channels_redis's name)."""

# A normal channel's message goes onto its list only below capacity, and the list lives
# as long as a message in it may (RedisChannelLayer's script does the same).
_PUSH_BELOW_CAPACITY = """
if redis.call('LLEN', KEYS[1]) >= tonumber(ARGV[2]) then
    return 0
end
redis.call('RPUSH', KEYS[1], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 1
"""


class Inbox:
    """The messages of one channel in this event loop, oldest first, each with the
    monotonic time it expires at; receivers wait in turn."""

    __slots__ = ("capacity", "messages", "waiters")

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.messages: deque[tuple[float, dict[str, Any]]] = deque()
        self.waiters: deque[asyncio.Future[None]] = deque()

    def expired(self, now: float) -> bool:
        """Its oldest message waited past its expiry with nobody receiving."""
        return bool(self.messages) and self.messages[0][0] <= now and not self.waiters

    def put(self, message: dict[str, Any], expires: float) -> bool:
        """False when the inbox holds `capacity` messages that have not expired."""
        now = time.monotonic()
        while self.messages and self.messages[0][0] <= now:
            self.messages.popleft()
        if len(self.messages) >= self.capacity:
            return False
        self.messages.append((expires, message))
        self._wake_next()
        return True

    async def get(self) -> dict[str, Any]:
        while True:
            now = time.monotonic()
            while self.messages:
                expires, message = self.messages.popleft()
                if expires > now:
                    return message
            waiter = asyncio.get_running_loop().create_future()
            self.waiters.append(waiter)
            try:
                await waiter
            except BaseException:
                if waiter in self.waiters:
                    self.waiters.remove(waiter)
                elif self.messages:  # woken and cancelled at once: the next receiver's turn
                    self._wake_next()
                raise

    def _wake_next(self) -> None:
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return


class LoopLayer:
    """The layer's state and connections in one event loop."""

    def __init__(self, layer: BusChannelLayer) -> None:
        self.layer = layer
        self.client = uuid.uuid4().hex
        self.publisher = RedisPublisher(
            layer.urls, layer.names, tls=layer.tls, max_outgoing=layer.max_outgoing
        )
        self.subscriber = RedisSubscriber(
            layer.urls, layer.names, tls=layer.tls, max_outgoing=layer.max_outgoing
        )
        self.subscriber.listen(self._received)
        self.subscriber.listen_groups(self._received_in_group)
        self.inboxes: dict[str, Inbox] = {}
        self.groups: dict[str, set[str]] = {}  # group -> channels of this loop
        self.memberships: dict[str, set[str]] = {}  # channel -> its groups
        self.specific: set[str] = set()  # the `<prefix><client>!` subscribed
        self._lists: dict[str, redis.asyncio.Redis] = {}

    # ---- channels -----------------------------------------------------------------------

    async def new_channel(self, prefix: str) -> str:
        head = f"{prefix}{self.client}!"
        if head not in self.specific:
            await self.subscriber.channel_add(self.layer.names.channel(head))
            self.specific.add(head)
        channel = f"{head}{uuid.uuid4().hex}"
        self._inbox(channel)
        return channel

    async def send(self, channel: str, message: dict[str, Any]) -> None:
        head, bang, _ = channel.partition("!")
        if not bang:
            await self._push(channel, message)
            return
        inbox = self.inboxes.get(channel)
        if inbox is not None:  # a channel of this loop: no round trip
            if not inbox.put(dict(message), self._expires()):
                raise ChannelFull(channel)
            return
        name = self.layer.names.channel(f"{head}!")
        await self.publisher.send(name, {**message, CHANNEL_KEY: channel})

    async def receive(self, channel: str) -> dict[str, Any]:
        if "!" not in channel:
            return await self._pop(channel)
        if channel.partition("!")[0] + "!" not in self.specific:
            raise ValueError(f"{channel!r} is not a channel of this process (new_channel)")
        return await self._inbox(channel).get()

    # ---- groups -------------------------------------------------------------------------

    async def group_add(self, group: str, channel: str) -> None:
        members = self.groups.get(group)
        if members is None:
            members = self.groups[group] = set()
            await self.subscriber.group_add(group)
        members.add(channel)
        self.memberships.setdefault(channel, set()).add(group)

    async def group_discard(self, group: str, channel: str) -> None:
        members = self.groups.get(group)
        if members is None or channel not in members:
            return
        members.discard(channel)
        groups = self.memberships.get(channel)
        if groups is not None:
            groups.discard(group)
            if not groups:
                del self.memberships[channel]
        if not members:
            del self.groups[group]
            await self.subscriber.group_discard(group)

    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        await self.publisher.group_send(group, message)

    # ---- flush and close ------------------------------------------------------------------

    async def close(self) -> None:
        await self.subscriber.close()
        await self.publisher.close()
        await asyncio.gather(*(client.aclose() for client in self._lists.values()))
        self._lists.clear()
        self.inboxes.clear()
        self.groups.clear()
        self.memberships.clear()
        self.specific.clear()

    async def delete_lists(self) -> None:
        """Every normal channel's list under this prefix, on every server."""
        pattern = self.layer.names.queue("*")
        for url in self.layer.urls:
            client = self._list_client(url)
            keys = [key async for key in client.scan_iter(match=pattern, count=1000)]
            if keys:
                await client.delete(*keys)

    # ---- what arrives ---------------------------------------------------------------------

    def _received(self, message: dict[str, Any]) -> None:
        channel = message.pop(CHANNEL_KEY, None)
        inbox = self.inboxes.get(channel) if isinstance(channel, str) else None
        if inbox is not None and not inbox.put(message, self._expires()):
            logger.debug("dropping a message for %s: at capacity", channel)

    def _received_in_group(self, group: str, message: dict[str, Any]) -> None:
        members = self.groups.get(group)
        if not members:
            return
        now, expires = time.monotonic(), self._expires()
        for channel in list(members):
            inbox = self.inboxes.get(channel)
            if inbox is None or inbox.expired(now):  # its consumer is gone
                self._forget(channel)
                continue
            inbox.put(dict(message), expires)  # over capacity: dropped, as the spec says

    def _forget(self, channel: str) -> None:
        self.inboxes.pop(channel, None)
        for group in self.memberships.pop(channel, ()):
            members = self.groups.get(group)
            if members is not None:
                members.discard(channel)
                if not members:
                    del self.groups[group]
                    self.subscriber.discard_soon(group)

    def _inbox(self, channel: str) -> Inbox:
        inbox = self.inboxes.get(channel)
        if inbox is None:
            inbox = self.inboxes[channel] = Inbox(self.layer.get_capacity(channel))
        return inbox

    def _expires(self) -> float:
        return time.monotonic() + float(self.layer.expiry)

    # ---- normal channels: Redis lists -----------------------------------------------------

    async def _push(self, channel: str, message: dict[str, Any]) -> None:
        key = self.layer.names.queue(channel)
        payload = serialize({"expires": time.time() + self.layer.expiry, "message": message})
        capacity = self.layer.get_capacity(channel)
        client = self._list_client(self._server_of(key))
        pushed = await client.eval(
            _PUSH_BELOW_CAPACITY, 1, key, payload, capacity, int(self.layer.expiry) + 1
        )
        if not pushed:
            raise ChannelFull(channel)

    async def _pop(self, channel: str) -> dict[str, Any]:
        key = self.layer.names.queue(channel)
        client = self._list_client(self._server_of(key))
        while True:
            _, payload = await client.blpop([key], timeout=0)  # type: ignore[misc]
            envelope = deserialize(cast(bytes, payload))
            if envelope.get("expires", 0) > time.time():
                message: dict[str, Any] = envelope["message"]
                return message

    def _server_of(self, key: str) -> str:
        return str(self.layer.urls[shard_index(key, len(self.layer.urls))])

    def _list_client(self, url: str) -> redis.asyncio.Redis:
        client = self._lists.get(url)
        if client is None:
            options = redis_py_options(url, 5.0, self.layer.tls)
            options["socket_timeout"] = None  # BLPOP waits as long as the receiver does
            client = self._lists[url] = redis.asyncio.Redis.from_url(url, **options)
        return client


class BusChannelLayer(BaseChannelLayer):
    """A Channels layer on the bus (see the module's docstring). Configured as channels
    layers are, `CHANNEL_LAYERS["default"]["CONFIG"]`: `hosts` (Redis URLs, sharded by
    name), `prefix`, `expiry`, `capacity`, `channel_capacity`, `tls_verify`,
    `tls_ca_file`, `max_outgoing`."""

    extensions = ["groups", "flush", BUS_EXTENSION]

    def __init__(
        self,
        hosts: list[str] | None = None,
        prefix: str = "asgi",
        expiry: float = 60,
        capacity: int = 100,
        channel_capacity: dict[str, int] | None = None,
        tls_verify: bool = True,
        tls_ca_file: str = "",
        max_outgoing: int = DEFAULT_MAX_OUTGOING,
    ) -> None:
        super().__init__(expiry=expiry, capacity=capacity)
        self.channel_capacity = self.compile_capacities(channel_capacity or {})
        self.urls = list(hosts or ["redis://127.0.0.1:6379"])
        self.names = BusNames(prefix)
        self.tls = RedisTls(verify=tls_verify, ca_file=tls_ca_file or None)
        self.max_outgoing = max_outgoing
        self._loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, LoopLayer] = (
            weakref.WeakKeyDictionary()
        )

    async def new_channel(self, prefix: str = "specific.") -> str:
        return await self._here().new_channel(prefix)

    async def send(self, channel: str, message: dict[str, Any]) -> None:
        assert isinstance(message, dict), "message is not a dict"
        self.require_valid_channel_name(channel)
        assert CHANNEL_KEY not in message, f"{CHANNEL_KEY} is the layer's own key"
        await self._here().send(channel, message)

    async def receive(self, channel: str) -> dict[str, Any]:
        self.require_valid_channel_name(channel)
        return await self._here().receive(channel)

    async def group_add(self, group: str, channel: str) -> None:
        self.require_valid_group_name(group)
        self.require_valid_channel_name(channel)
        await self._here().group_add(group, channel)

    async def group_discard(self, group: str, channel: str) -> None:
        self.require_valid_group_name(group)
        self.require_valid_channel_name(channel)
        await self._here().group_discard(group, channel)

    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        assert isinstance(message, dict), "message is not a dict"
        self.require_valid_group_name(group)
        await self._here().group_send(group, message)

    async def flush(self) -> None:
        """Like new: the normal channels' lists deleted, and in this event loop every
        channel, membership and connection dropped (connections open again on the next
        call)."""
        await self._here().delete_lists()
        await self.close()

    async def close(self) -> None:
        """Close this event loop's connections."""
        layer = self._loops.pop(asyncio.get_running_loop(), None)
        if layer is not None:
            await layer.close()

    def _here(self) -> LoopLayer:
        loop = asyncio.get_running_loop()
        layer = self._loops.get(loop)
        if layer is None:
            layer = self._loops[loop] = LoopLayer(self)
            self._close_with(loop)
        return layer

    def _close_with(self, loop: asyncio.AbstractEventLoop) -> None:
        """Close this loop's connections when the loop is closed (async_to_sync's loops
        end with their call), as channels_redis's `_wrap_close` does."""
        close = loop.close
        loops = self._loops

        def close_layer_first(self_loop: asyncio.AbstractEventLoop) -> None:
            layer = loops.pop(self_loop, None)
            if layer is not None and not self_loop.is_running():
                self_loop.run_until_complete(layer.close())
            close()

        loop.close = types.MethodType(close_layer_first, loop)  # type: ignore[method-assign]
