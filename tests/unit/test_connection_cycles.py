"""A WebSocket connection daphne served is freed by reference counting once it closed.

The connection runs through daphne's own HTTP channel, request, upgrade and WebSocket
protocol on an in-memory transport, with the cyclic garbage collector off: whatever is
still alive after the close is held by a reference cycle (or by something else), not
merely waiting for a collection.
"""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Iterator
from typing import Any

import pytest
from daphne.http_protocol import HTTPFactory, WebRequest
from daphne.server import Server
from daphne.ws_protocol import WebSocketFactory, WebSocketProtocol
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure

from rooms.server import connection_cycles, fast_http

PEER = IPv4Address("TCP", "127.0.0.1", 40000)
HANDSHAKE = (
    b"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: localhost\r\n"
    b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


def accepting_app(accepted: asyncio.Event) -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        while (await receive())["type"] != "websocket.disconnect":
            await send({"type": "websocket.accept"})
            accepted.set()

    return app


@pytest.fixture
def no_collector() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.collect()


@pytest.fixture
def as_shipped(monkeypatch: pytest.MonkeyPatch) -> None:
    """daphne's and autobahn's own methods, and no first look (rooms.server.fast_http),
    whatever an earlier test in this process installed."""
    monkeypatch.setattr(WebRequest, "process", connection_cycles._process)
    monkeypatch.setattr(WebSocketProtocol, "connectionLost", connection_cycles._connection_lost)
    monkeypatch.setattr(HTTPFactory, "buildProtocol", fast_http._daphne_build_protocol)


@pytest.fixture
def installed(as_shipped: None) -> None:
    connection_cycles.install()


async def serve_and_close_one_websocket() -> dict[str, weakref.ref[Any]]:
    """Weak references to the channel, request and protocol of one closed connection."""
    accepted = asyncio.Event()
    server = Server(
        application=accepting_app(accepted), endpoints=["tcp:port=0:interface=127.0.0.1"]
    )
    server.connections = {}
    server.http_factory = HTTPFactory(server)
    server.ws_factory = WebSocketFactory(server, server=server.server_name)
    connected: dict[str, weakref.ref[Any]] = {}  # the request, then the WebSocket protocol
    track = server.protocol_connected
    server.protocol_connected = lambda p: (
        connected.setdefault(type(p).__name__, weakref.ref(p)),
        track(p),
    )
    transport = StringTransport(peerAddress=PEER)
    http_protocol = server.http_factory.buildProtocol(PEER)
    http_protocol.makeConnection(transport)
    refs = {"channel": weakref.ref(transport.producer)}  # twisted.web.http.HTTPChannel
    http_protocol.dataReceived(HANDSHAKE)
    del http_protocol
    protocol = transport.protocol
    assert isinstance(protocol, WebSocketProtocol)
    refs |= {"request": connected["WebRequest"], "protocol": connected["WebSocketProtocol"]}
    await asyncio.wait_for(accepted.wait(), 5)
    assert transport.value().startswith(b"HTTP/1.1 101 Switching Protocols")
    application = server.connections[protocol]["application_instance"]

    protocol.connectionLost(Failure(ConnectionDone()))  # what Twisted does when TCP closes
    transport.unregisterProducer()
    transport.protocol = None
    del protocol
    await application
    server.connections.clear()  # daphne's application_checker, once the app has ended
    return refs


async def test_a_closed_websocket_is_freed_without_a_collection(
    installed: None, no_collector: None
) -> None:
    refs = await serve_and_close_one_websocket()
    assert {name: ref() is None for name, ref in refs.items()} == {
        "channel": True,
        "request": True,
        "protocol": True,
    }


async def test_without_it_the_closed_websocket_waits_for_a_full_collection(
    as_shipped: None, no_collector: None
) -> None:
    """Proves the test above can fail: daphne and autobahn as shipped keep both cycles
    (when they stop doing so, this fails, and the module can go)."""
    refs = await serve_and_close_one_websocket()
    assert {name: ref() is None for name, ref in refs.items()} == {
        "channel": False,
        "request": False,
        "protocol": False,
    }
    gc.collect()
    assert all(ref() is None for ref in refs.values())


async def test_a_request_daphne_refuses_at_once_still_gets_its_answer(installed: None) -> None:
    """daphne answers a bad header value with a 400 inside `process`, and Twisted then drops
    the request's channel attribute: the wrapper must not fail on it (else the client gets a
    closed connection instead of the 400)."""
    server = Server(
        application=accepting_app(asyncio.Event()),
        endpoints=["tcp:port=0:interface=127.0.0.1"],
    )
    server.connections = {}
    server.http_factory = HTTPFactory(server)
    transport = StringTransport(peerAddress=PEER)
    channel = server.http_factory.buildProtocol(PEER)
    channel.makeConnection(transport)
    channel.dataReceived(b"GET / HTTP/1.1\r\nX: a\x0bb\r\nConnection: close\r\n\r\n")
    assert transport.value().startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert transport.disconnecting
