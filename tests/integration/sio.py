"""python-socketio's AsyncClient, used exactly as an application would, with its events queued."""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from typing import Any

import socketio

SERVER_EVENTS = ("handshake", "socket-connected", "socket-disconnected", "identity-change", "error")


class Recorder:
    """One official client whose server events land in a queue per event name."""

    def __init__(self) -> None:
        # No reconnection: a dropped connection must show up as a failure, not be healed.
        self.client = socketio.AsyncClient(reconnection=False)
        self.queues: defaultdict[str, asyncio.Queue[Any]] = defaultdict(asyncio.Queue)
        self.connect_errors: list[Any] = []
        for name in SERVER_EVENTS:
            self.client.on(name, self._recorder(name))
        self.client.on("connect_error", self._on_connect_error)

    def _recorder(self, name: str) -> Any:
        def record(*args: Any) -> None:
            self.queues[name].put_nowait(args[0] if len(args) == 1 else args)

        return record

    def _on_connect_error(self, *args: Any) -> None:
        self.connect_errors.append(args[0] if len(args) == 1 else args)

    async def connect(self, url: str, auth: dict[str, Any] | None = None) -> Recorder:
        await self.client.connect(url, transports=["websocket"], auth=auth, wait_timeout=5)
        return self

    @property
    def sid(self) -> str:
        """The Socket.IO socket id the server assigned (not the Engine.IO sid)."""
        sid = self.client.get_sid()
        assert isinstance(sid, str), sid
        return sid

    async def next(self, name: str, within: float = 5) -> Any:
        return await asyncio.wait_for(self.queues[name].get(), within)

    async def nothing_more(self, name: str, wait: float = 0.3) -> list[Any]:
        """What else arrives for `name` within `wait` seconds (expected: nothing)."""
        await asyncio.sleep(wait)
        extra = []
        while not self.queues[name].empty():
            extra.append(self.queues[name].get_nowait())
        return extra

    async def call(self, event: str, *args: Any, within: float = 5) -> Any:
        data = args[0] if len(args) == 1 else (args or None)
        return await self.client.call(event, data, timeout=within)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.client.disconnect()
