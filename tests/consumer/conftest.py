"""Socket.IO clients driven by WebsocketCommunicator against the real ASGI stack.

Every test gets the in-process bus, a fresh WorkerNode on its own event loop (stopped
at teardown, so its listener and janitor tasks do not outlive the loop) and the ten seed users.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
from asgiref.sync import SyncToAsync
from channels.testing import WebsocketCommunicator
from django.db import connections
from pytest_django.fixtures import Settings

from identity_playground.asgi import application
from rooms.cluster.node import WorkerNode
from rooms.runtime import NODE
from rooms.socketio import codec

# Generous per-frame timeouts: they only bound a failing test, a passing one never waits them out.
FRAME_TIMEOUT = 3.0
# How long "nothing else arrives" is watched for. Enough because these tests run the
# consumers, the node and the in-process bus on the test's own event loop: a wrong frame is
# queued a few loop turns after what caused it (no I/O, no other process), and a stall of
# this machine pauses that delivery and the watch alike. `assert_nothing` also lets at
# least QUIET_TURNS loop turns run, so a watch whose time ran out in a stall still sees it.
QUIET = 0.2
QUIET_TURNS = 20


def socket_path(**query: str) -> str:
    return "/socket.io/?" + urlencode({"EIO": "4", "transport": "websocket", **query})


class Client:
    """One raw Socket.IO v5 client over one WebsocketCommunicator."""

    def __init__(self, path: str, headers: list[tuple[bytes, bytes]] | None = None) -> None:
        self.comm = WebsocketCommunicator(application, path, headers=headers)
        self.sid: str | None = None
        self.auto_pong = True  # answer the server's pings while reading, as real clients do
        self.pings = 0
        self._next_ack = 0
        self._pending: deque[codec.Packet] = deque()  # frames read while awaiting an ack
        self._finished = False
        self.handshake: tuple[Any, ...] = ()

    # ---- Engine.IO ----------------------------------------------------------------------

    async def open(self) -> codec.Open:
        """Upgrade and read the OPEN packet."""
        connected, detail = await self.comm.connect(timeout=FRAME_TIMEOUT)
        assert connected, f"WebSocket refused with close code {detail}"
        packet = await self.recv()
        assert isinstance(packet, codec.Open), packet
        return packet

    async def send(self, frame: str) -> None:
        await self.comm.send_to(text_data=frame)

    async def recv_frame(self, within: float = FRAME_TIMEOUT) -> str:
        """The next raw text frame (pings included); fails if the server closes instead."""
        frame = await self.comm.receive_from(timeout=within)
        assert isinstance(frame, str), f"binary frame from the server: {frame!r}"
        return frame

    async def recv(self, within: float = FRAME_TIMEOUT) -> codec.Packet:
        """The next packet other than a PING (answered with a PONG when auto_pong is on)."""
        if self._pending:
            return self._pending.popleft()
        while True:
            packet = codec.decode(await self.recv_frame(within))
            if not isinstance(packet, codec.Ping):
                return packet
            self.pings += 1
            if self.auto_pong:
                await self.send(codec.encode(codec.Pong(packet.data)))

    async def recv_event(self, within: float = FRAME_TIMEOUT) -> codec.Event:
        packet = await self.recv(within)
        assert isinstance(packet, codec.Event), packet
        return packet

    async def assert_nothing(self, within: float = QUIET) -> None:
        """No frame arrives `within` seconds, apart from pings (answered when auto_pong is on)."""
        assert not self._pending, list(self._pending)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        turns = 0
        while loop.time() < deadline or turns < QUIET_TURNS:
            if self.comm.future.done():
                self.comm.future.result()  # raise what made the consumer fail
            if self.comm.output_queue.empty():
                turns += 1
                await asyncio.sleep(0.01)
                continue
            message = self.comm.output_queue.get_nowait()
            if self.auto_pong and message == {"type": "websocket.send", "text": "2"}:
                self.pings += 1
                await self.send("3")
                continue
            raise AssertionError(f"unexpected {message}")

    async def assert_closed(self, within: float = FRAME_TIMEOUT) -> int:
        """The server closes the WebSocket; returns how many pings it sent before closing."""
        pings = 0
        while True:
            message = await self.comm.receive_output(timeout=within)
            if message["type"] == "websocket.close":
                return pings
            assert message == {"type": "websocket.send", "text": "2"}, f"before close: {message}"
            pings += 1

    async def finish(self) -> None:
        """Close the client side (websocket.disconnect) and let the consumer end."""
        if not self._finished:
            self._finished = True
            await self.comm.disconnect(timeout=FRAME_TIMEOUT)

    # ---- Socket.IO ----------------------------------------------------------------------

    async def connect_namespace(self, auth: dict[str, Any] | None = None) -> str:
        """CONNECT ("40" or "40{auth}"), read the sid and the handshake event."""
        await self.send("40" if auth is None else "40" + json.dumps(auth))
        reply = await self.recv()
        assert isinstance(reply, codec.Connect), reply
        assert reply.auth is not None and set(reply.auth) == {"sid"}, reply
        sid = reply.auth["sid"]
        assert isinstance(sid, str) and sid, reply
        self.sid = sid
        handshake = await self.recv_event()
        assert handshake.name == "handshake", handshake
        self.handshake = handshake.args
        return sid

    async def connect_refused(self, auth: dict[str, Any] | None = None) -> str:
        """CONNECT that the server answers with CONNECT_ERROR; returns its message."""
        await self.send("40" if auth is None else "40" + json.dumps(auth))
        reply = await self.recv()
        assert isinstance(reply, codec.ConnectError), reply
        assert reply.namespace == "/"
        return reply.message

    async def emit(self, name: str, *args: Any) -> None:
        await self.send(codec.encode(codec.Event(name, args)))

    async def call(self, name: str, *args: Any) -> Any:
        """EVENT with an ack id; returns the ACK's single argument.

        Frames that arrive before the ACK are kept for the next `recv`.
        """
        self._next_ack += 1
        ack_id = self._next_ack
        await self.send(codec.encode(codec.Event(name, args, ack_id)))
        return await self.ack(ack_id)

    async def emit_with_ack(self, name: str, *args: Any) -> int:
        """EVENT with an ack id, without waiting; returns the ack id."""
        self._next_ack += 1
        await self.send(codec.encode(codec.Event(name, args, self._next_ack)))
        return self._next_ack

    async def ack(self, ack_id: int) -> Any:
        early: list[codec.Packet] = []
        while True:
            packet = await self.recv()
            if isinstance(packet, codec.Ack):
                assert packet.ack_id == ack_id, f"ACK {packet.ack_id}, expected {ack_id}"
                assert len(packet.args) == 1, packet
                self._pending.extend(early)
                return packet.args[0]
            early.append(packet)


ClientFactory = Callable[..., Awaitable[Client]]


async def quiet(*clients: Client, within: float = QUIET) -> None:
    """No client gets a frame (pings aside) `within` seconds; all watched at once."""
    await asyncio.gather(*(c.assert_nothing(within) for c in clients))


async def expect(client: Client, name: str, *args: Any) -> None:
    """The client's next packet is the EVENT `name` with exactly these arguments."""
    event = await client.recv_event()
    assert (event.name, event.args) == (name, args), event


@pytest.fixture(scope="session", autouse=True)
def close_thread_connections(django_db_setup: None) -> Iterator[None]:
    """database_sync_to_async runs queries in asgiref's single worker thread, whose
    connection outlives the tests (CONN_MAX_AGE): close it before pytest-django drops the
    test database, which PostgreSQL refuses while another session is open."""
    yield
    SyncToAsync.single_thread_executor.submit(connections.close_all).result()


@pytest.fixture
async def socketio_env(settings: Settings, seeded: None) -> AsyncIterator[Settings]:
    """Single-process settings (the in-process bus), the node stopped afterwards."""
    settings.REDIS_URL = ""
    settings.REDIS_URLS = []
    yield settings
    await NODE.stop()


@pytest.fixture
async def node(socketio_env: Settings) -> WorkerNode:
    """This test's node: the one the consumers on this event loop use."""
    return await NODE.node()


@pytest.fixture
async def clients(socketio_env: Settings) -> AsyncIterator[list[Client]]:
    """Every Client a test made; all are disconnected at teardown."""
    made: list[Client] = []
    yield made
    for client in made:
        future = client.comm._future
        if future is None or future.cancelled():
            # never started, or cancelled by a receive that timed out (channels' communicator
            # does that): the test has failed already, and says why
            continue
        # A consumer that crashes while disconnecting, or does not end in time, fails the
        # test here (the communicator re-raises what the application raised).
        await client.finish()


@pytest.fixture
def raw_client(clients: list[Client]) -> Callable[..., Client]:
    """A Client that has not opened yet: `raw_client(path, headers=...)`."""

    def make(path: str | None = None, headers: list[tuple[bytes, bytes]] | None = None) -> Client:
        client = Client(path or socket_path(), headers)
        clients.append(client)
        return client

    return make


@pytest.fixture
def connect(raw_client: Callable[..., Client]) -> ClientFactory:
    """A connected socket: `await connect(id_user="1", room="Maths")` or `auth={...}`.

    Query parameters are passed as keywords; `auth` goes in the CONNECT packet.
    """

    async def make(auth: dict[str, Any] | None = None, **query: str) -> Client:
        client = raw_client(socket_path(**query))
        await client.open()
        await client.connect_namespace(auth)
        return client

    return make
