"""Connections through rooms.server.fast_http: simple requests for the cluster's endpoints are
answered on the spot, everything else reaches daphne's own HTTP channel unchanged.

daphne's server, factories and channel are real; the transport is Twisted's in-memory one,
so the bytes on the wire are compared exactly, with and without the first look.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from daphne.http_protocol import HTTPFactory
from daphne.server import Server
from daphne.ws_protocol import WebSocketFactory, WebSocketProtocol
from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport
from twisted.protocols.policies import WrappingFactory

from rooms.http.routing import served_without_django
from rooms.server import fast_http, forwarded

PEER = IPv4Address("TCP", "127.0.0.1", 40000)
HOST = IPv4Address("TCP", "127.0.0.1", 8000)
ROSTER = b"GET /lobby%2F1/users?hydrate=1 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
BODY = b'[{"id_socket":"s","id_user":"1"}]'


class App:
    """An ASGI app that answers every request with BODY; `hold` makes it wait first."""

    def __init__(self) -> None:
        self.scopes: list[dict[str, Any]] = []
        self.hold: asyncio.Event | None = None
        self.received: list[dict[str, Any]] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        self.scopes.append(scope)
        if scope["type"] == "websocket":
            await receive()
            await send({"type": "websocket.accept"})
            return
        self.received.append(await receive())
        if self.hold is not None:
            await self.hold.wait()
        if scope["path"] == "/boom/users":
            raise RuntimeError("boom")
        headers = [(b"Content-Type", b"application/json"), (b"Content-Length", b"%d" % len(BODY))]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": BODY})


@pytest.fixture
def stock_build(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """daphne's own buildProtocol to start from (whatever an earlier test installed), and
    whatever was there before afterwards."""
    monkeypatch.setattr(HTTPFactory, "buildProtocol", fast_http._daphne_build_protocol)
    monkeypatch.setattr(fast_http, "_served_here", served_without_django)
    yield
    fast_http._waiting.clear()


def make_server(app: App) -> Server:
    server = Server(application=app, endpoints=["tcp:port=0:interface=127.0.0.1"])
    server.connections = {}
    server.http_factory = HTTPFactory(server)
    server.ws_factory = WebSocketFactory(server, server=server.server_name)
    return server


async def serve(data: bytes, *, first_look: bool, app: App | None = None) -> StringTransport:
    """One connection that sends `data`, with or without the first look; the transport once
    the application is done."""
    HTTPFactory.buildProtocol = (
        fast_http.build_first_look if first_look else fast_http._daphne_build_protocol
    )
    transport = connect(make_server(app or App()))
    transport.protocol.dataReceived(data)
    await settle()
    return transport


def connect(server: Server) -> StringTransport:
    """A new connection to `server`; `transport.protocol` is whoever serves it now, as on
    Twisted's TCP connections."""
    transport = StringTransport(hostAddress=HOST, peerAddress=PEER)
    transport.protocol = server.http_factory.buildProtocol(PEER)
    transport.protocol.makeConnection(transport)
    return transport


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_roster_request_is_answered_here_and_the_connection_closed(
    stock_build: None,
) -> None:
    app = App()
    transport = await serve(ROSTER, first_look=True, app=app)
    assert transport.value() == (
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nServer: daphne\r\n"
        b"Content-Type: application/json\r\nContent-Length: 33\r\n\r\n" + BODY
    )
    assert transport.disconnecting
    assert isinstance(transport.protocol, fast_http.FirstLook)  # daphne never saw it
    assert app.received == [{"type": "http.request", "body": b"", "more_body": False}]
    assert app.scopes == [
        {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "path": "/lobby/1/users",
            "raw_path": b"/lobby%2F1/users",
            "root_path": "",
            "scheme": "http",
            "query_string": b"hydrate=1",
            "headers": [(b"host", b"h"), (b"connection", b"close")],
            "client": ["127.0.0.1", 40000],
            "server": ["127.0.0.1", 8000],
        }
    ]


async def test_daphne_gives_the_same_scope_and_body(stock_build: None) -> None:
    """What the first look replaces, for comparison: the same scope (daphne fills in no
    `asgi` key of its own before create_application) and the same body."""
    app = App()
    transport = await serve(ROSTER, first_look=False, app=app)
    assert transport.value().endswith(b"\r\n\r\n" + BODY)
    assert b"Connection: close" in transport.value()
    (scope,) = app.scopes
    assert {**scope, "asgi": {"version": "3.0"}} == (await _first_look_scope())


async def _first_look_scope() -> dict[str, Any]:
    app = App()
    await serve(ROSTER, first_look=True, app=app)
    return app.scopes[0]


async def test_head_gets_the_headers_without_the_body(stock_build: None) -> None:
    transport = await serve(b"HEAD /workers HTTP/1.0\r\n\r\n", first_look=True)
    assert transport.value() == (
        b"HTTP/1.0 200 OK\r\nServer: daphne\r\n"
        b"Content-Type: application/json\r\nContent-Length: 33\r\n\r\n"
    )
    assert transport.disconnecting


async def test_a_kept_alive_connection_goes_on_with_daphne(stock_build: None) -> None:
    app = App()
    transport = await serve(b"GET /healthz HTTP/1.1\r\nHost: h\r\n\r\n", first_look=True, app=app)
    assert transport.value().endswith(b"\r\n\r\n" + BODY)
    assert b"Connection" not in transport.value()
    assert not transport.disconnecting
    channel = transport.protocol
    assert not isinstance(channel, fast_http.FirstLook)
    transport.clear()
    channel.dataReceived(b"GET /ui/lobby HTTP/1.1\r\nConnection: close\r\n\r\n")
    await settle()
    assert transport.value().startswith(b"HTTP/1.1 200 OK\r\n")
    assert [scope["path"] for scope in app.scopes] == ["/healthz", "/ui/lobby"]


async def test_a_request_pipelined_behind_one_being_answered_waits_for_it(
    stock_build: None,
) -> None:
    app = App()
    app.hold = asyncio.Event()
    transport = await serve(b"GET /workers HTTP/1.1\r\nHost: h\r\n\r\n", first_look=True, app=app)
    transport.protocol.dataReceived(b"GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n")
    assert transport.producerState == "paused"
    assert transport.value() == b""
    app.hold.set()
    await settle()
    first, second = transport.value().split(BODY)[:2]
    assert first.startswith(b"HTTP/1.1 200 OK") and second.startswith(b"HTTP/1.1 200 OK")
    assert transport.producerState == "producing"
    assert [scope["path"] for scope in app.scopes] == ["/workers", "/healthz"]


@pytest.mark.parametrize(
    "data",
    [
        b"GET /ui/lobby HTTP/1.1\r\nConnection: close\r\n\r\n",  # a Django page
        b"POST /lobby/users HTTP/1.1\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}",
        b"GET /lobby/users HTTP/1.1\r\nX: \x01\r\nConnection: close\r\n\r\n",  # bad value
        b"GET /lobby/users HTTP/1.1\r\nBad Name: x\r\n\r\n",
        b"GET /lobby/users HTTP/1.1\r\nX_Y: x\r\nConnection: close\r\n\r\n",
        b"GET /lobby/\xff/users HTTP/1.1\r\nConnection: close\r\n\r\n",
        b"BREW /lobby/users HTTP/1.1\r\n\r\n",
        b"GET /lobby/users HTTP/1.1\r\nHost: h\r\n",  # head in two pieces: the first
    ],
)
async def test_anything_else_reaches_daphne_and_gets_its_answer(
    stock_build: None, data: bytes
) -> None:
    with_first_look = await serve(data, first_look=True)
    alone = await serve(data, first_look=False)
    assert with_first_look.value() == alone.value()
    assert with_first_look.disconnecting == alone.disconnecting
    assert type(with_first_look.protocol) is type(alone.protocol)


async def test_a_websocket_handshake_is_upgraded_by_daphne(stock_build: None) -> None:
    handshake = (
        b"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: h\r\n"
        b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    transport = await serve(handshake, first_look=True)
    assert isinstance(transport.protocol, WebSocketProtocol)
    assert transport.value().startswith(b"HTTP/1.1 101 Switching Protocols\r\n")


async def test_a_failing_application_gets_a_500_and_a_log_line(
    stock_build: None, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="rooms.server.fast_http"):
        transport = await serve(b"GET /boom/users HTTP/1.1\r\nHost: h\r\n\r\n", first_look=True)
    assert transport.value().startswith(b"HTTP/1.1 500 Internal Server Error\r\n")
    assert transport.value().endswith(b'\r\n\r\n{"error":"Internal Server Error"}')
    assert transport.disconnecting
    assert "Exception inside application: RuntimeError('boom')" in caplog.text


async def test_a_client_gone_mid_request_is_told_and_written_nothing(
    stock_build: None,
) -> None:
    app = App()
    app.hold = asyncio.Event()
    transport = await serve(ROSTER, first_look=True, app=app)
    connection = transport.protocol
    connection.connectionLost(None)
    app.hold.set()
    await settle()
    assert transport.value() == b""
    assert await connection.responding.receive() == {"type": "http.disconnect"}


@pytest.mark.parametrize(
    ("trusted", "client", "scheme"),
    [(True, ["10.0.0.1", 443], "https"), (False, [str(PEER.host), PEER.port], "http")],
    ids=["from a trusted proxy", "from anyone else"],
)
async def test_forwarded_addresses_when_daphne_takes_proxy_headers(
    stock_build: None,
    monkeypatch: pytest.MonkeyPatch,
    trusted: bool,
    client: list[Any],
    scheme: str,
) -> None:
    """As daphne's own parser behind rooms.server.forwarded: the headers of a trusted peer
    only, and X-Forwarded-For's last entry, the one that proxy wrote."""
    monkeypatch.setattr(forwarded, "_trusts", lambda peer: trusted and peer == PEER.host)
    app = App()
    HTTPFactory.buildProtocol = fast_http.build_first_look
    server = make_server(app)
    server.proxy_forwarded_address_header = "X-Forwarded-For"
    server.proxy_forwarded_port_header = "X-Forwarded-Port"
    server.proxy_forwarded_proto_header = "X-Forwarded-Proto"
    transport = connect(server)
    transport.protocol.dataReceived(
        b"GET /workers HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 203.0.113.9, 10.0.0.1\r\n"
        b"X-Forwarded-Port: 443\r\nX-Forwarded-Proto: https\r\n\r\n"
    )
    await settle()
    assert (app.scopes[0]["client"], app.scopes[0]["scheme"]) == (client, scheme)


async def test_with_daphnes_access_log_on_daphne_serves_everything(stock_build: None) -> None:
    HTTPFactory.buildProtocol = fast_http.build_first_look
    server = make_server(App())
    server.action_logger = lambda *args: None
    transport = connect(server)
    transport.protocol.dataReceived(ROSTER)
    assert not isinstance(transport.protocol, fast_http.FirstLook)


def test_connections_that_send_nothing_are_closed_after_the_idle_timeout(
    stock_build: None,
) -> None:
    HTTPFactory.buildProtocol = fast_http.build_first_look
    server = make_server(App())
    quiet, fresh = connect(server), connect(server)
    quiet.protocol.since, fresh.protocol.since = 100.0, 150.0
    fast_http.close_idle(now=100.0 + server.http_factory.timeOut)
    assert (quiet.disconnecting, fresh.disconnecting) == (True, False)
    assert list(fast_http._waiting) == [fresh.protocol]


async def test_a_wrapped_connection_tls_say_goes_to_daphne_at_once(stock_build: None) -> None:
    """Under a wrapping protocol (TLS is one) daphne works out scheme and protocol itself:
    the first look steps aside before any byte arrives."""
    HTTPFactory.buildProtocol = fast_http.build_first_look
    app = App()
    server = make_server(app)
    transport = StringTransport(hostAddress=HOST, peerAddress=PEER)
    wrapper = WrappingFactory(server.http_factory).buildProtocol(PEER)
    wrapper.makeConnection(transport)
    assert not isinstance(wrapper.wrappedProtocol, fast_http.FirstLook)
    assert not fast_http._waiting
    wrapper.dataReceived(ROSTER)
    await settle()
    assert transport.value().endswith(b"\r\n\r\n" + BODY)
    assert [scope["path"] for scope in app.scopes] == ["/lobby/1/users"]
