"""Many python-socketio clients that keep every event they receive, for cluster tests."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

import socketio

EVENTS = ("handshake", "socket-connected", "socket-disconnected", "identity-change",
          "worker-down", "error")  # fmt: skip


class Client:
    """One socket: `events` keeps (name, payload) in arrival order."""

    def __init__(self) -> None:
        self.sio = socketio.AsyncClient(reconnection=False)
        self.events: list[tuple[str, Any]] = []
        self.arrived = asyncio.Event()
        for name in EVENTS:
            self.sio.on(name, self._recorder(name))

    def _recorder(self, name: str) -> Any:
        async def record(*args: Any) -> None:
            self.events.append((name, args[0] if args else None))
            self.arrived.set()

        return record

    async def connect(self, base_url: str, id_user: str, room: str | None = None) -> Client:
        query = f"?id_user={id_user}" + (f"&room={room}" if room else "")
        await self.sio.connect(base_url + query, transports=["websocket"], wait_timeout=5)
        await self.wait_for("handshake")
        return self

    @property
    def sid(self) -> str:
        sid = self.sio.get_sid()
        assert sid is not None
        return sid

    @property
    def procid(self) -> str:
        return str(self.payloads("handshake")[0]["procid"])

    def payloads(self, name: str) -> list[Any]:
        return [payload for event, payload in self.events if event == name]

    async def wait_for(self, name: str, predicate: Any = None, within: float = 5) -> Any:
        """The first payload of that event (matching the predicate), waiting if needed."""

        async def first() -> Any:
            while True:
                for payload in self.payloads(name):
                    if predicate is None or predicate(payload):
                        return payload
                self.arrived.clear()
                await self.arrived.wait()

        return await asyncio.wait_for(first(), within)

    async def close(self) -> None:
        if self.sio.connected:
            await self.sio.disconnect()


async def connect_many(base_url: str, specs: Iterable[tuple[str, str | None]]) -> list[Client]:
    return list(await asyncio.gather(*(Client().connect(base_url, u, r) for u, r in specs)))


async def close_all(clients: Iterable[Client]) -> None:
    await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)
