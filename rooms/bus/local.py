"""The bus of a single process with no Redis: publishing calls the subscriber directly.

Used when REDIS_URL is empty (one worker, `manage.py runserver`, the consumer tests). It
keeps the bus's promise that every message reaches `on_message` once, in order, and never
inside the publisher's own call stack (as a message from Redis never would).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from typing import Any

from rooms.bus.subscriber import OnMessage


class LocalBus:
    """Both ends of the bus (rooms.bus.publisher.Publisher, rooms.bus.subscriber.Subscriber)."""

    def __init__(self) -> None:
        self.channel = ""
        self.groups: set[str] = set()
        self._on_message: OnMessage | None = None

    # ---- Subscriber ---------------------------------------------------------------------

    def listen(self, on_message: OnMessage) -> None:
        self._on_message = on_message

    async def new_channel(self, kind: str) -> str:
        self.channel = f"local:{kind}{uuid.uuid4().hex}"
        return self.channel

    async def group_add(self, group: str) -> None:
        self.groups.add(group)

    async def group_discard(self, *groups: str) -> None:
        self.groups.difference_update(groups)

    async def close(self) -> None:
        self._on_message = None

    # ---- Publisher ----------------------------------------------------------------------

    async def group_send(self, group: str, message: dict[str, Any]) -> int:
        return self._deliver(group in self.groups, message)

    async def send(self, channel: str, message: dict[str, Any]) -> int:
        return self._deliver(channel == self.channel, message)

    async def group_send_many(self, messages: Sequence[tuple[str, dict[str, Any]]]) -> list[bool]:
        for group, message in messages:
            self._deliver(group in self.groups, message)
        return [True] * len(messages)

    def send_soon(self, channel: str, message: dict[str, Any]) -> bool:
        self._deliver(channel == self.channel, message)
        return True

    def _deliver(self, subscribed: bool, message: dict[str, Any]) -> int:
        if not subscribed or self._on_message is None:
            return 0
        asyncio.get_running_loop().call_soon(self._on_message, message)
        return 1
