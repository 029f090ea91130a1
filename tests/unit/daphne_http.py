"""daphne's real HTTP channel over an in-memory transport, for the tests of the limits
rooms.server patches into it (test_request_limits, test_request_heads)."""

from __future__ import annotations

import asyncio
from typing import Any, TypeVar

from daphne.http_protocol import HTTPFactory
from daphne.server import Server
from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport

PEER = IPv4Address("TCP", "127.0.0.1", 40000)

T = TypeVar("T", bound=StringTransport)


class App:
    """Records each request's path and body, answers 204 at once."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, bytes]] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        self.requests.append((scope["path"], body))
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})


def make_server(app: App) -> Server:
    server = Server(application=app, endpoints=["tcp:port=0:interface=127.0.0.1"])
    server.connections = {}
    server.http_factory = HTTPFactory(server)
    return server


def connect(app: App, transport: T, server: Server | None = None) -> T:
    """`transport` (made with peerAddress=PEER) connected to a channel of daphne's."""
    server = server or make_server(app)
    transport.protocol = server.http_factory.buildProtocol(PEER)
    transport.protocol.makeConnection(transport)
    return transport


async def settle() -> None:
    """Let the application's task and daphne's queue handling run."""
    for _ in range(200):
        await asyncio.sleep(0)
