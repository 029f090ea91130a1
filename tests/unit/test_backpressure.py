"""What a WebSocket connection has queued to send is measured, and an abort drops it at once.

Built on daphne's own WebSocketProtocol over Twisted's own TCP transport (tcp.Connection)
around one end of a Unix socket pair whose other end this test reads, or does not: a
client that stops reading, with the kernel buffers made small. The reactor is Twisted's
MemoryReactorClock, so the transport writes only when the test calls its doWrite.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from types import SimpleNamespace

import pytest
from daphne.server import Server
from daphne.ws_protocol import WebSocketFactory, WebSocketProtocol
from twisted.internet import tcp
from twisted.internet.address import IPv4Address
from twisted.internet.testing import MemoryReactorClock

from rooms.server import backpressure
from rooms.server.ws_frames import text_frame

KERNEL_BUFFER = 4096


class SocketPairTransport(tcp.Connection):
    """Twisted's TCP connection (its write, buffers and abort unchanged) on a socket pair,
    which has no TCP addresses of its own to report."""

    def getPeer(self) -> IPv4Address:
        return IPv4Address("TCP", "127.0.0.1", 40000)

    def getHost(self) -> IPv4Address:
        return IPv4Address("TCP", "127.0.0.1", 8000)


@dataclass
class Connection:
    websocket: WebSocketProtocol
    transport: SocketPairTransport
    reactor: MemoryReactorClock
    daphne: Server
    client: socket.socket  # the peer's end: read only when the test says so

    def send(self, text: str) -> None:
        """A text frame through daphne's own reply path, as the ASGI send hands it over."""
        self.websocket.handle_reply({"type": "websocket.send", "text": text})

    def asgi_send(self) -> partial[object]:
        """What daphne hands the application as `send` (daphne/server.py, create_application)."""
        return partial(self.daphne.handle_reply, self.websocket)

    def received(self) -> int:
        """Read all the client's kernel holds; the number of bytes read."""
        total = 0
        while True:
            try:
                chunk = self.client.recv(1 << 16)
            except BlockingIOError:
                return total
            if not chunk:
                return total
            total += len(chunk)


@pytest.fixture
def connection() -> Iterator[Connection]:
    ours, client = socket.socketpair()
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, KERNEL_BUFFER)
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, KERNEL_BUFFER)
    client.setblocking(False)
    reactor = MemoryReactorClock()
    daphne = Server(application=None, endpoints=["tcp:port=0"])  # never listens
    websocket = WebSocketFactory(server_class=daphne).buildProtocol(None)
    daphne.connections = {websocket: {}}
    transport = SocketPairTransport(ours, websocket, reactor)
    transport.connected = 1
    websocket.makeConnection(transport)
    websocket.state = WebSocketProtocol.STATE_OPEN
    # what daphne's onConnect sets from the upgrade request
    websocket.server, websocket.path = daphne, b"/socket.io/"
    websocket.request = SimpleNamespace(path="/socket.io/")
    websocket.client_addr = ["127.0.0.1", 40000]
    yield Connection(websocket, transport, reactor, daphne, client)
    client.close()
    if hasattr(transport, "socket"):
        transport.socket.close()


def test_the_bytes_queued_are_those_the_kernel_has_not_taken(connection: Connection) -> None:
    """Frames the client does not read wait in the transport; the measure counts exactly the
    bytes written and not yet handed to the kernel, and falls to 0 as the client reads."""
    outgoing = backpressure.outgoing(connection.asgi_send())
    assert outgoing is not None
    assert outgoing.queued() == 0
    texts = [f"42{i:04d}" + "x" * 9_000 for i in range(40)]
    written = sum(len(text_frame(text)) for text in texts)
    for text in texts[:20]:
        connection.send(text)
    connection.transport.doWrite()  # what the kernel takes moves to it
    for text in texts[20:]:
        connection.send(text)
    connection.transport.doWrite()
    taken = connection.received()
    assert outgoing.queued() == written - taken
    assert outgoing.queued() > written // 2  # a few kernel buffers, not 360 KB
    while outgoing.queued():
        connection.transport.doWrite()
        taken += connection.received()
        assert outgoing.queued() == written - taken
    assert taken == written


def test_abort_drops_what_is_queued_and_closes_the_connection(connection: Connection) -> None:
    """After abort nothing is queued any more, the socket is closed on the next reactor turn
    and daphne tells the application the WebSocket is gone."""
    outgoing = backpressure.outgoing(connection.asgi_send())
    assert outgoing is not None
    for i in range(40):
        connection.send(f"42{i:04d}" + "x" * 9_000)
    connection.transport.doWrite()
    assert outgoing.queued() > 300_000
    connection.websocket.application_queue = queue = _Queue()

    outgoing.abort()

    assert outgoing.queued() == 0
    connection.reactor.advance(0)  # Twisted's abortConnection loses the connection then
    assert not connection.transport.connected
    assert queue.items == [{"type": "websocket.disconnect", "code": 1006}]
    connection.client.settimeout(2)  # the client reads what its kernel holds, then the end
    with contextlib.suppress(ConnectionResetError):
        while connection.client.recv(1 << 16):
            pass


class _Queue:
    """Stands in for daphne's application queue, to see what the application is told."""

    def __init__(self) -> None:
        self.items: list[object] = []

    def put_nowait(self, item: object) -> None:
        self.items.append(item)


@pytest.mark.parametrize("send", [None, print, partial(print, "not a connection")])
def test_nothing_to_measure_for_anything_but_daphnes_websocket_send(send: object) -> None:
    assert backpressure.outgoing(send) is None
