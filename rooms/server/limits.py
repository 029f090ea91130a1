"""Request bodies bounded as they arrive: refused from their Content-Length, or cut off.

daphne gives an application the request body only after Twisted has read all of it:
twisted.web.http.Request writes each piece into `request.content` (a temporary file past
100 kB), and daphne's WebRequest.process then reads the whole file into the application's
queue at once (daphne/http_protocol.py), so every upload, however large, passes through
the worker's memory before any view can refuse it. Twisted calls two methods of the request
while the body arrives, and they are the hooks here:
- `gotLength(length)` once the head is in (`length` from Content-Length, None when the body
  is chunked): a declared length over the cap is answered at once with 413 JSON
  (RFC 9110 section 15.5.14), before a byte of the body is read;
- `handleContentChunk(data)` per piece of body: a chunked body is counted and cut off with
  the same 413 once it passes the cap.
A refused request never reaches the application (`requestReceived` does nothing for it).

After the 413 the connection is closed the way RFC 9112 section 9.6 asks of a server that
answers before the whole request has arrived: its sending side is shut down and what the
client still sends is read and dropped for a while (`LINGER_SECONDS`), because closing a
socket with unread data makes the kernel send a reset, which can destroy the response
before the client has read it. Draining costs no memory, only the reading.

Always on, whatever SERVER_TUNING says: this is a safety limit, not a speed-up. Patching
daphne's request class serves both connections daphne parses from the start and those
rooms.server.fast_http hands to it. Nothing of the application is known here; the cap is
handed in by the worker's entry point.
"""

from __future__ import annotations

from typing import Any

import orjson
from daphne.http_protocol import WebRequest
from twisted.internet import protocol

# nginx's lingering_timeout default: long enough for a client on a slow link to see the
# response, short enough that a client that keeps sending holds the connection briefly.
LINGER_SECONDS = 5.0

_got_length = WebRequest.gotLength
_handle_content_chunk = WebRequest.handleContentChunk
_request_received = WebRequest.requestReceived

_cap: int = 0
_reactor: Any = None


def response_413(cap: int) -> bytes:
    """The whole response: status line, head and JSON body, for a connection that ends."""
    body = orjson.dumps({"error": f"Request body larger than {cap} bytes"})
    head = (
        b"HTTP/1.1 413 Content Too Large\r\n"
        b"Content-Type: application/json\r\n"
        b"Content-Length: %d\r\n"
        b"Connection: close\r\n\r\n" % len(body)
    )
    return head + body


class Drain(protocol.Protocol):
    """What is left of a refused connection: reads and drops what the client still sends
    until it closes its side (which, this protocol not being half-closeable, closes the
    connection) or until `LINGER_SECONDS` have passed; then lets the HTTP channel clean up
    as for any lost connection."""

    transport: Any

    def __init__(self, channel: Any, reactor: Any) -> None:
        self.channel = channel
        self.reactor = reactor
        self.deadline: Any = None

    def connectionMade(self) -> None:
        self.deadline = self.reactor.callLater(LINGER_SECONDS, self.transport.abortConnection)
        lose_write = getattr(self.transport, "loseWriteConnection", None)
        if lose_write is None:  # TLS: no half-close; close once the response is written
            self.transport.loseConnection()
        else:
            lose_write()  # FIN after the 413; the client's data is still read

    def dataReceived(self, data: bytes) -> None:
        pass

    def connectionLost(self, reason: Any = None) -> None:
        if self.deadline is not None and self.deadline.active():
            self.deadline.cancel()
        self.channel.connectionLost(reason)


def refuse(request: Any) -> None:
    """Answer 413 and take the connection away from Twisted's HTTP channel."""
    request.body_refused = True
    channel = request.channel
    channel.refused = True  # rooms.server.request_heads: no body deadline, nothing parsed
    transport = channel.transport
    if transport is None:
        return
    transport.write(response_413(_cap))
    # Twisted sends "100 Continue" after gotLength when the client asked for it (curl does
    # for large uploads): it is no longer true.
    request.requestHeaders.removeHeader(b"Expect")
    channel.setTimeout(None)
    channel.clearLineBuffer()  # what arrived behind the head is not parsed either
    drain = Drain(channel, _reactor)
    if hasattr(transport, "wrappedProtocol"):  # TLS (twisted.protocols.policies)
        transport.wrappedProtocol = drain
    else:
        transport.protocol = drain
    drain.makeConnection(transport)  # type: ignore[no-untyped-call]


def got_length(request: Any, length: int | None) -> None:
    request.body_received = 0
    request.body_refused = False
    if length is not None and length > _cap:
        refuse(request)
        return
    _got_length(request, length)


def handle_content_chunk(request: Any, data: bytes) -> None:
    if request.body_refused:
        return
    request.body_received += len(data)
    if request.body_received > _cap:
        request.content.close()
        refuse(request)
        return
    _handle_content_chunk(request, data)


def request_received(request: Any, command: bytes, path: bytes, version: bytes) -> None:
    if getattr(request, "body_refused", False):
        return
    _request_received(request, command, path, version)


def install(reactor: Any, *, max_body_bytes: int) -> None:
    """Bound every request body daphne reads from now on to `max_body_bytes` (idempotent;
    the last cap given holds)."""
    global _cap, _reactor
    if max_body_bytes < 0:
        raise ValueError(f"max_body_bytes must be >= 0, not {max_body_bytes}")
    _cap, _reactor = max_body_bytes, reactor
    WebRequest.gotLength = got_length
    WebRequest.handleContentChunk = handle_content_chunk
    WebRequest.requestReceived = request_received
