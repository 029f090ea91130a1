"""The cluster's JSON endpoints served straight from the socket, the rest by daphne.

Every plain HTTP request daphne serves goes through Twisted's HTTP machinery: a line
parser, a Request object with header objects, a per-connection idle timer, daphne's
per-request queue and checker, and Twisted's response writer. Together with the accept,
that is most of a worker's CPU for a request refused at once, and more than the cluster
query behind a roster (py-spy; bench/README.md, "Server tuning"). Here each new connection
first meets a small protocol: when its first bytes are exactly one simple request
(rooms.server.http_head) for an endpoint the application serves without Django's URL
routing (the runner hands the predicate to `install`), the ASGI application is called here
and the response written in one piece.
Anything else, and anything after a kept-alive response, is handed with the bytes
received so far to the HTTP channel daphne would have built, which then serves the
connection: WebSocket upgrades, pages, the admin, malformed requests and their error
responses are daphne's own.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote

from asgiref.compatibility import guarantee_single_callable
from daphne.http_protocol import HTTPFactory
from twisted.internet import protocol
from twisted.protocols.policies import ProtocolWrapper

from rooms.server.forwarded import forwarded_client
from rooms.server.http_head import SimpleRequest, parse_simple_request

logger = logging.getLogger(__name__)

_daphne_build_protocol = HTTPFactory.buildProtocol
SWEEP_INTERVAL = 5.0
JSON = (b"Content-Type", b"application/json")


def _serves_nothing(raw_path: bytes) -> bool:
    return False


_served_here: Callable[[bytes], bool] = _serves_nothing


class FirstLook(protocol.Protocol):
    """One connection until it is served here or handed to daphne's HTTP channel."""

    transport: Any  # Twisted's TCP connection (ITransport and more), set by makeConnection

    def __init__(self, factory: Any, addr: Any) -> None:
        self.factory = factory
        self.addr = addr
        self.buffer = b""
        self.since = time.monotonic()
        self.responding: _Response | None = None

    def connectionMade(self) -> None:
        if isinstance(self.transport, ProtocolWrapper):
            self.hand_over()  # TLS: daphne works out the scheme and the protocol (ALPN)
        else:
            _waiting[self] = None

    def dataReceived(self, data: bytes) -> None:
        self.buffer += data
        if self.responding is not None:
            self.transport.pauseProducing()  # the next request waits for this response
            return
        request = parse_simple_request(self.buffer)
        if request is None or not self._serves(request):
            self.hand_over()
            return
        self.buffer = b""
        _waiting.pop(self, None)
        self.responding = _Response(self, request)

    def _serves(self, request: SimpleRequest) -> bool:
        """Only endpoints that do without Django, and only while daphne keeps no access
        log (`runcluster --access-log`): that log is daphne's to write."""
        return self.factory.server.action_logger is None and _served_here(request.raw_path)

    def connectionLost(self, reason: Any = None) -> None:
        _waiting.pop(self, None)
        if self.responding is not None:
            self.responding.client_gone()

    def responded(self, keep_alive: bool) -> None:
        """A kept-alive connection goes on with daphne, which then also keeps its idle
        timer; what arrived meanwhile (a pipelined request) goes with it."""
        self.responding = None
        if keep_alive:
            self.transport.resumeProducing()
            self.hand_over()
        else:
            self.transport.loseConnection()

    def hand_over(self) -> None:
        """From now on daphne serves this connection, starting with what arrived so far."""
        _waiting.pop(self, None)
        channel = _daphne_build_protocol(self.factory, self.addr)
        if isinstance(self.transport, ProtocolWrapper):
            self.transport.wrappedProtocol = channel
        else:
            self.transport.protocol = channel
        channel.makeConnection(self.transport)
        data, self.buffer = self.buffer, b""
        if data:
            channel.dataReceived(data)


class _Response:
    """One request through the ASGI application, as daphne would run it."""

    def __init__(self, connection: FirstLook, request: SimpleRequest) -> None:
        self.connection = connection
        self.request = request
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.started = False
        self.head_written = False
        self.finished = False
        self.close_delimited = not request.keep_alive
        self.request_given = False
        self.disconnected = asyncio.get_running_loop().create_future()
        server = connection.factory.server
        application = _single_callable(server.application)
        task = asyncio.ensure_future(application(self.scope(), self.receive, self.send))
        _running.add(task)
        task.add_done_callback(self.ended)

    def scope(self) -> dict[str, Any]:
        request = self.request
        server = self.connection.factory.server
        transport = self.connection.transport
        peer, host = transport.getPeer(), transport.getHost()
        client: list[Any] | None = [str(peer.host), peer.port] if hasattr(peer, "port") else None
        scheme: str | None = "http"
        if server.proxy_forwarded_address_header:
            headers: dict[bytes, list[bytes]] = {}
            for name, value in request.headers:
                headers.setdefault(name, []).append(value)
            client, scheme = forwarded_client(
                headers,
                server.proxy_forwarded_address_header,
                server.proxy_forwarded_port_header,
                server.proxy_forwarded_proto_header,
                client,
                scheme,
            )
        return {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": request.http_version,
            "method": request.method,
            "path": unquote(request.raw_path.decode("ascii")),
            "raw_path": request.raw_path,
            "root_path": server.root_path,
            "scheme": scheme,
            "query_string": request.query_string,
            "headers": request.headers,
            "client": client,
            "server": [str(host.host), host.port] if hasattr(host, "port") else None,
        }

    async def receive(self) -> dict[str, Any]:
        """The (empty) request body once, then a disconnect when the client has gone."""
        if not self.request_given:
            self.request_given = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.shield(self.disconnected)
        return {"type": "http.disconnect"}

    async def send(self, message: dict[str, Any]) -> None:
        if self.finished or self.disconnected.done():
            return
        kind = message["type"]
        if kind == "http.response.start":
            if self.started:
                raise ValueError("HTTP response has already been started")
            self.started = True
            self.status = int(message["status"])
            self.headers = list(message.get("headers", ()))
        elif kind == "http.response.body":
            if not self.started:
                raise ValueError(f"HTTP response has not yet been started but got {kind}")
            self.write(message.get("body", b""), more=bool(message.get("more_body", False)))
        else:
            raise ValueError(f"Cannot handle message type {kind}!")

    def write(self, body: bytes, *, more: bool) -> None:
        if self.request.method == "HEAD":
            body = b""
        if not self.head_written:
            self.head_written = True
            head = self.head(body_length=None if more else len(body))
            self.connection.transport.write(head + body)
        elif body:
            self.connection.transport.write(body)
        if not more:
            self.finished = True
            self.connection.responded(keep_alive=not self.close_delimited)

    def head(self, body_length: int | None) -> bytes:
        names = {name.lower() for name, _ in self.headers}
        extra: list[tuple[bytes, bytes]] = []
        if b"content-length" not in names:
            if body_length is None or self.request.method == "HEAD":
                self.close_delimited = True  # the body ends where the connection does
            else:
                extra.append((b"Content-Length", b"%d" % body_length))
        server_name = self.connection.factory.server.server_name
        if server_name and b"server" not in names:
            extra.append((b"Server", server_name.encode()))
        if self.close_delimited and self.request.http_version == "1.1":
            extra.insert(0, (b"Connection", b"close"))
        try:
            reason = HTTPStatus(self.status).phrase.encode()
        except ValueError:
            reason = b"Unknown Status"
        lines = [b"HTTP/%s %d %s" % (self.request.http_version.encode(), self.status, reason)]
        lines += [name + b": " + value for name, value in (*extra, *self.headers)]
        return b"\r\n".join(lines) + b"\r\n\r\n"

    def client_gone(self) -> None:
        if not self.disconnected.done():
            self.disconnected.set_result(None)

    def ended(self, task: asyncio.Task[None]) -> None:
        """As daphne does: a failed application is logged and its client gets a 500 (or,
        when the response had begun, a closed connection)."""
        _running.discard(task)
        error = None if task.cancelled() else task.exception()
        if error is not None:
            logger.error("Exception inside application: %r", error, exc_info=error)
        if self.finished or self.disconnected.done():
            return
        if error is None:
            logger.error("Application returned without completing the response")
        self.finished = True
        if self.head_written:
            self.connection.transport.loseConnection()
            return
        self.status, self.headers, self.close_delimited = 500, [JSON], True
        body = b'{"error":"Internal Server Error"}'
        self.connection.transport.write(self.head(len(body)) + body)
        self.connection.responded(keep_alive=False)


@functools.cache
def _single_callable(application: Any) -> Any:
    """The application as an ASGI 3 callable, worked out once, not per request as daphne
    does."""
    return guarantee_single_callable(application)  # type: ignore[no-untyped-call]


_waiting: dict[FirstLook, None] = {}  # connections that have sent no request yet, oldest first
_running: set[asyncio.Task[None]] = set()  # held until done: the loop keeps weak references


_silent_timeout: float | None = None  # None: the factory's idle timeout, as Twisted's


def close_idle(now: float) -> None:
    """Close connections that sent nothing for the silent-connection timeout given to
    `install` (else their factory's idle timeout, as Twisted's idle timer would): one
    sweep at a time instead of one timer per connection."""
    for connection in list(_waiting):
        if now - connection.since < (_silent_timeout or connection.factory.timeOut or 60.0):
            break
        _waiting.pop(connection, None)
        connection.transport.abortConnection()


def build_first_look(factory: Any, addr: Any) -> FirstLook:
    return FirstLook(factory, addr)


def install(
    reactor: Any, serves: Callable[[bytes], bool], *, silent_timeout: float | None = None
) -> None:
    """Every HTTP connection daphne accepts from now on gets its first look here, and the
    requests whose raw path `serves` accepts are answered by it (idempotent). A connection
    that sends nothing is closed after `silent_timeout` seconds, when given."""
    global _served_here, _silent_timeout
    _silent_timeout = silent_timeout
    _served_here = serves
    if HTTPFactory.buildProtocol is build_first_look:
        return
    HTTPFactory.buildProtocol = build_first_look

    def sweep() -> None:
        close_idle(time.monotonic())
        reactor.callLater(interval, sweep)

    interval = min(SWEEP_INTERVAL, (silent_timeout or SWEEP_INTERVAL) / 2)
    reactor.callLater(interval, sweep)
