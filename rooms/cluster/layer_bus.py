"""The node's bus over any Channels layer with groups: channels_redis's layers, for one.

The node needs what channels' layer specification (docs/channel_layer_spec.rst in
django/channels) gives every backend: a channel of its own, groups, `send`, `group_send`
and `receive`. What the bus gives beyond it (rooms.bus: how many workers a PUBLISH
reached, writes queued without waiting, one subscription per process serving all its
groups) the cluster does without here: a publish reaches an unknown number (None), so a
gather reads the directory for whom to expect (rooms.cluster.gather).

A message sent to a group does not say which group it came through, and a `socketio.emit`
sent to a room's group from Django code names no room: so each group this worker joins
gets a channel of its own and one task receiving on it, which hands its messages on with
the group's name. Groups are rooms with a socket here, plus the cluster's group: a task
per room, never per socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from rooms.bus.subscriber import OnGroupMessage, OnMessage
from rooms.cluster.events import CLUSTER_GROUP
from rooms.cluster.membership import Directory

logger = logging.getLogger(__name__)

# a layer's receive that fails (its Redis away) is tried again after this long
RETRY_S = 1.0


class ChannelLayer(Protocol):
    """What the node uses of a Channels layer (the spec's core and its groups extension)."""

    async def new_channel(self, prefix: str = ...) -> str: ...
    async def send(self, channel: str, message: dict[str, Any]) -> None: ...
    async def receive(self, channel: str) -> dict[str, Any]: ...
    async def group_add(self, group: str, channel: str) -> None: ...
    async def group_discard(self, group: str, channel: str) -> None: ...
    async def group_send(self, group: str, message: dict[str, Any]) -> None: ...


class LayerBus:
    """Publisher and Subscriber (rooms.bus) over one Channels layer."""

    def __init__(self, layer: ChannelLayer) -> None:
        self.layer = layer
        self._on_message: OnMessage | None = None
        self._on_group_message: OnGroupMessage | None = None
        self._receivers: dict[str, tuple[str, asyncio.Task[None]]] = {}  # group -> its own
        self._own: asyncio.Task[None] | None = None
        # joins and leaves take effect in the order they are asked for, each whole: a room
        # left and joined again while the first join is on its way ends joined, once
        self._membership = asyncio.Lock()

    # ---- Publisher ----------------------------------------------------------------------

    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        await self.layer.group_send(group, message)

    async def send(self, channel: str, message: dict[str, Any]) -> None:
        await self.layer.send(channel, message)

    async def group_send_many(self, messages: Sequence[tuple[str, dict[str, Any]]]) -> list[bool]:
        taken = []
        for group, message in messages:
            try:
                await self.layer.group_send(group, message)
                taken.append(True)
            except Exception as exc:  # the layer's connection errors
                logger.debug("group_send to %s failed: %r", group, exc)
                taken.append(False)
        return taken

    def send_soon(self, channel: str, message: dict[str, Any]) -> bool:
        return False  # a layer's send is a coroutine: the caller awaits `send`

    # ---- Subscriber ---------------------------------------------------------------------

    def listen(self, on_message: OnMessage) -> None:
        self._on_message = on_message

    def listen_groups(self, on_group_message: OnGroupMessage) -> None:
        self._on_group_message = on_group_message

    async def new_channel(self, prefix: str) -> str:
        """This worker's own channel, received on from now on. Its name has the layer's
        default prefix, as every channel here: channels_redis's RedisChannelLayer receives
        a process's channels of one prefix in one loop, and a receive on another prefix
        waits behind it."""
        channel = await self.layer.new_channel()
        self._own = asyncio.create_task(self._receive(channel, None), name=f"receive {channel}")
        return channel

    async def group_add(self, group: str) -> None:
        async with self._membership:
            if group in self._receivers:
                return
            channel = await self.layer.new_channel()
            receiving = asyncio.create_task(self._receive(channel, group), name=f"receive {group}")
            try:
                await self.layer.group_add(group, channel)
            except BaseException:  # the caller may try again: nothing is left half-joined
                receiving.cancel()
                raise
            self._receivers[group] = (channel, receiving)

    async def group_discard(self, *groups: str) -> None:
        async with self._membership:
            left = [(g, self._receivers.pop(g)) for g in groups if g in self._receivers]
            for _group, (_channel, receiving) in left:
                receiving.cancel()
            for group, (channel, _receiving) in left:
                await self.layer.group_discard(group, channel)

    async def close(self) -> None:
        tasks = [receiving for _channel, receiving in self._receivers.values()]
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.group_discard(*self._receivers), timeout=1.0)
        if self._own is not None:
            tasks.append(self._own)
            self._own = None
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _receive(self, channel: str, group: str | None) -> None:
        while True:
            try:
                message = await self.layer.receive(channel)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # its Redis away: the layer reconnects on the next call
                logger.warning("receiving on %s failed: %r", channel, exc)
                await asyncio.sleep(RETRY_S)
                continue
            try:
                if group is not None and self._on_group_message is not None:
                    self._on_group_message(group, message)
                elif self._on_message is not None:
                    self._on_message(message)
            except Exception:
                logger.exception("handling a message on %s failed", channel)


async def ask_through_layer(
    layer: ChannelLayer,
    directory: Directory,
    query_to: Callable[[str], dict[str, Any]],
    deadline: float,
) -> list[dict[str, Any]]:
    """A cluster query from outside the workers (Django code in a thread): `query_to(channel)`
    sent to the cluster's group with a channel of the asker's own to reply to; the replies
    of the workers the directory lists alive, or those that came within `deadline`."""
    channel = await layer.new_channel()
    await layer.group_send(CLUSTER_GROUP, query_to(channel))
    alive, _dead = await directory.scan()
    expected = {worker.procid for worker in alive}
    replies: dict[str, dict[str, Any]] = {}
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(deadline):
            while not expected <= replies.keys():
                reply = await layer.receive(channel)
                replies.setdefault(reply["procid"], reply)
    return list(replies.values())
