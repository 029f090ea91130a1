"""python-socketio's AsyncClient, used as an application would, keeping every event it receives.

One recorder for every test that drives the official Python client: cluster and multihost
tests read the ordered `events` (`wait_for`, `payloads`), interop tests consume them one at a
time per event name (`next`, `nothing_more`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

import aiohttp
import socketio

# the contract's events, and "news", which tests send from Django code (emit_to_room)
EVENTS = ("handshake", "socket-connected", "socket-disconnected", "identity-change",
          "worker-down", "error", "news")  # fmt: skip

# What the tests connect with unless they ask otherwise; `transports=None` leaves the choice
# to python-socketio: HTTP long-polling first, then the upgrade to WebSocket.
WEBSOCKET_ONLY = ("websocket",)


class Client:
    """One socket: `events` keeps (name, payload) in arrival order."""

    def __init__(self, http_session: aiohttp.ClientSession | None = None) -> None:
        """`http_session`: the aiohttp session python-engineio sends its requests with (the
        caller closes it); by default one of its own, which reuses its connections."""
        # No reconnection: a dropped connection must show up as a failure, not be healed.
        self.sio = socketio.AsyncClient(reconnection=False, http_session=http_session)
        self.events: list[tuple[str, Any]] = []
        self.arrived = asyncio.Event()
        self.connect_errors: list[Any] = []
        self._consumed: dict[str, int] = {}  # per event name: how many `next` returned
        for name in EVENTS:
            self.sio.on(name, self._recorder(name))
        self.sio.on("connect_error", self._on_connect_error)

    def _recorder(self, name: str) -> Any:
        async def record(*args: Any) -> None:
            self.events.append((name, args[0] if args else None))
            self.arrived.set()

        return record

    def _on_connect_error(self, *args: Any) -> None:
        self.connect_errors.append(args[0] if len(args) == 1 else args)

    async def open(
        self,
        url: str,
        auth: dict[str, Any] | None = None,
        transports: Sequence[str] | None = WEBSOCKET_ONLY,
    ) -> Client:
        """Connect to exactly this URL (query included), as an application would, over
        `transports` (None: python-socketio's defaults)."""
        await self.sio.connect(
            url,
            transports=None if transports is None else list(transports),
            auth=auth,
            wait_timeout=5,
        )
        return self

    async def connect(
        self,
        base_url: str,
        id_user: str,
        room: str | None = None,
        transports: Sequence[str] | None = WEBSOCKET_ONLY,
    ) -> Client:
        """Connect with id_user (and room) in the query; return once the handshake arrived."""
        query = f"?id_user={id_user}" + (f"&room={room}" if room else "")
        await self.open(base_url + query, transports=transports)
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

    async def next(self, name: str, within: float = 5) -> Any:
        """The next payload of that event not yet returned by `next`, waiting if needed."""
        index = self._consumed.get(name, 0)

        async def arrived() -> Any:
            while len(payloads := self.payloads(name)) <= index:
                self.arrived.clear()
                await self.arrived.wait()
            return payloads[index]

        payload = await asyncio.wait_for(arrived(), within)
        self._consumed[name] = index + 1
        return payload

    async def nothing_more(self, name: str, wait: float = 0.3) -> list[Any]:
        """What else arrives for `name` within `wait` seconds (expected: nothing)."""
        await asyncio.sleep(wait)
        extra = self.payloads(name)[self._consumed.get(name, 0) :]
        self._consumed[name] = self._consumed.get(name, 0) + len(extra)
        return extra

    async def call(self, event: str, *args: Any, within: float = 5) -> Any:
        """Emit with an acknowledgement; the server's ack payload."""
        data = args[0] if len(args) == 1 else (args or None)
        return await self.sio.call(event, data, timeout=within)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.sio.disconnect()


async def connect_many(base_url: str, specs: Iterable[tuple[str, str | None]]) -> list[Client]:
    return list(await asyncio.gather(*(Client().connect(base_url, u, r) for u, r in specs)))


async def spread_clients(base_url: str, room: str, count: int) -> list[Client]:
    """`count` sockets in `room` (users 1..10 in turn), landing on at least 2 workers."""
    clients = await connect_many(base_url, [(str(i % 10 + 1), room) for i in range(count)])

    async def one_more() -> Client:
        return await Client().connect(base_url, str(len(clients) % 10 + 1), room)

    return await until_two_workers(clients, one_more)


async def until_two_workers(
    clients: list[Client], one_more: Callable[[], Awaitable[Client]]
) -> list[Client]:
    """`clients`, with sockets from `one_more` appended until two workers hold them.

    The kernel picks the worker of each connection: every worker is woken and the first to
    run accepts, so on a loaded machine one worker may take a whole burst and the next
    connects too (seen in CI with 20 more). Sequential connects are added, each after a
    short pause that lets the other workers be scheduled, until two workers are used.
    """
    extra = 0
    while len({c.procid for c in clients}) < 2 and extra < 100:
        await asyncio.sleep(0.02)
        clients.append(await one_more())
        extra += 1
    assert len({c.procid for c in clients}) >= 2, "the kernel put every socket on one worker"
    return clients


async def close_all(clients: Iterable[Client]) -> None:
    await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)
