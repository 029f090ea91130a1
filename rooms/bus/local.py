"""The bus of a single process with no Redis: publishing calls the subscriber directly.

Used when REDIS_URL is empty (one worker, `manage.py runserver`, the consumer tests). It
keeps the bus's promise that every message reaches `on_message` once, in order, and never
inside the publisher's own call stack (as a message from Redis never would), on the event
loop that listens, whichever loop or thread sends.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Sequence
from typing import Any

from channels.layers import InMemoryChannelLayer

from rooms.bus.subscriber import OnGroupMessage, OnMessage

logger = logging.getLogger(__name__)


class LocalBus:
    """Both ends of the bus (rooms.bus.publisher.Publisher, rooms.bus.subscriber.Subscriber)."""

    def __init__(self) -> None:
        self.channel = ""
        self.groups: set[str] = set()
        self._on_message: OnMessage | None = None
        self._on_group_message: OnGroupMessage | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def listening(self) -> bool:
        return self._on_message is not None

    # ---- Subscriber ---------------------------------------------------------------------

    def listen(self, on_message: OnMessage) -> None:
        self._on_message = on_message
        self._loop = asyncio.get_running_loop()

    def listen_groups(self, on_group_message: OnGroupMessage) -> None:
        self._on_group_message = on_group_message

    async def new_channel(self, kind: str) -> str:
        self.channel = f"local:{kind}{uuid.uuid4().hex}"
        return self.channel

    async def group_add(self, group: str) -> None:
        self.groups.add(group)

    async def group_discard(self, *groups: str) -> None:
        self.groups.difference_update(groups)

    async def close(self) -> None:
        self._on_message = None
        self._on_group_message = None
        self.groups.clear()

    # ---- Publisher ----------------------------------------------------------------------

    async def group_send(self, group: str, message: dict[str, Any]) -> int:
        return self._deliver(group in self.groups, message, group)

    async def send(self, channel: str, message: dict[str, Any]) -> int:
        return self._deliver(channel == self.channel, message)

    async def group_send_many(self, messages: Sequence[tuple[str, dict[str, Any]]]) -> list[bool]:
        for group, message in messages:
            self._deliver(group in self.groups, message, group)
        return [True] * len(messages)

    def send_soon(self, channel: str, message: dict[str, Any]) -> bool:
        self._deliver(channel == self.channel, message)
        return True

    def _deliver(self, subscribed: bool, message: dict[str, Any], group: str = "") -> int:
        loop = self._loop
        if not subscribed or self._on_message is None or loop is None or loop.is_closed():
            return 0
        here = loop is asyncio.get_running_loop()
        schedule = loop.call_soon if here else loop.call_soon_threadsafe
        if group and self._on_group_message is not None:
            schedule(self._on_group_message, group, message)
        else:
            schedule(self._on_message, message)
        return 1


PROCESS_BUS = LocalBus()
"""The bus of this process when it has no Redis: its node listens on it, and
SingleProcessChannelLayer's group sends reach that node through it."""


class SingleProcessChannelLayer(InMemoryChannelLayer):
    """Channels' in-memory layer, whose `group_send` also reaches the sockets of this
    process: the node hears a group's messages on PROCESS_BUS (a room's group, the
    `cluster` group), as it hears them from Redis in a cluster. A process with no node
    (`manage.py shell` with no REDIS_URL and no `make run` to find) says once that its
    sends reach no socket."""

    _warned = False

    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        await super().group_send(group, message)
        if PROCESS_BUS.listening:
            await PROCESS_BUS.group_send(group, message)
        elif not SingleProcessChannelLayer._warned:
            SingleProcessChannelLayer._warned = True
            logger.warning(
                "group_send to %r reaches no socket: no REDIS_URL is set (nor a running "
                "`make run`'s, EMBEDDED_REDIS_FILE) and no worker runs in this process",
                group,
            )
