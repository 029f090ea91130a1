"""Request heads must arrive whole, in time, and with CRLF line ends.

Twisted's HTTP channel resets its idle timer on every byte it receives, and daphne leaves
that timer at Twisted's default of 12 hours: a client that sends one header byte every few
seconds holds a connection (and a worker's file descriptor) indefinitely, the slow-loris
attack. Here every request head, a WebSocket handshake included, must be complete within
a deadline counted from the connection's start or from the end of the previous response
on a kept-alive connection: past it the connection gets 408 (RFC 9110 section 15.5.9)
when part of a head had arrived, and is closed quietly when nothing had.

Twisted splits lines on CRLF only, so a request with bare LF line ends never completes a
line and waited for the idle timer: such a head is answered 400 at once (RFC 9112
section 2.2 lets a server refuse a bare LF).

Always on, like rooms.server.limits; patches twisted.web.http.HTTPChannel, the one
channel class daphne serves HTTP/1.1 with, in the worker process only.
"""

from __future__ import annotations

from typing import Any

from twisted.web import http

_data_received: Any = http.HTTPChannel.dataReceived
_all_headers_received: Any = http.HTTPChannel.allHeadersReceived
_request_done: Any = http.HTTPChannel.requestDone
_connection_made: Any = http.HTTPChannel.connectionMade
_connection_lost: Any = http.HTTPChannel.connectionLost

_deadline_s: float = 10.0
_reactor: Any = None


def _json_response(status: bytes, error: str) -> bytes:
    body = b'{"error":"%s"}' % error.encode()
    return (
        b"HTTP/1.1 %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
        b"Connection: close\r\n\r\n%s" % (status, len(body), body)
    )


RESPONSE_408 = _json_response(b"408 Request Timeout", "Request head not complete in time")
RESPONSE_400_LF = _json_response(b"400 Bad Request", "Request lines must end with CRLF")


def _start(channel: Any) -> None:
    _cancel(channel)
    channel.head_bytes = 0
    channel.head_last = b""
    channel.head_deadline = _reactor.callLater(_deadline_s, _expire, channel)


def _cancel(channel: Any) -> None:
    deadline = getattr(channel, "head_deadline", None)
    if deadline is not None and deadline.active():
        deadline.cancel()
    channel.head_deadline = None


def _expire(channel: Any) -> None:
    channel.head_deadline = None
    transport = channel.transport
    if transport is None:
        return
    if channel.head_bytes:
        transport.write(RESPONSE_408)
        transport.loseConnection()
    else:
        transport.abortConnection()


def _reading_a_head(channel: Any) -> bool:
    return getattr(channel, "head_deadline", None) is not None


def connection_made(channel: Any) -> None:
    _connection_made(channel)
    _start(channel)


def data_received(channel: Any, data: bytes) -> None:
    if _reading_a_head(channel):
        head = data.split(b"\r\n\r\n", 1)[0]  # what follows the head is a body
        text = channel.head_last + head
        if b"\n" in text and text.replace(b"\r\n", b"").find(b"\n") >= 0:
            _cancel(channel)
            channel.transport.write(RESPONSE_400_LF)
            channel.transport.loseConnection()
            return
        channel.head_bytes += len(data)
        channel.head_last = b"\r" if head.endswith(b"\r") else b""  # a CR whose LF comes next
    _data_received(channel, data)


def all_headers_received(channel: Any) -> None:
    _cancel(channel)
    _all_headers_received(channel)


def request_done(channel: Any, request: Any) -> None:
    _request_done(channel, request)
    if channel.persistent and channel.transport is not None:
        _start(channel)  # the next request's head, on a kept-alive connection


def connection_lost(channel: Any, reason: Any) -> None:
    _cancel(channel)
    _connection_lost(channel, reason)


def install(reactor: Any, *, deadline_s: float) -> None:
    """Every HTTP/1.1 connection made from now on has `deadline_s` for each request head
    (idempotent; the last deadline given holds)."""
    global _deadline_s, _reactor
    if deadline_s <= 0:
        raise ValueError(f"deadline_s must be > 0, not {deadline_s}")
    _deadline_s, _reactor = deadline_s, reactor
    http.HTTPChannel.connectionMade = connection_made  # type: ignore[method-assign]
    http.HTTPChannel.dataReceived = data_received  # type: ignore[method-assign]
    http.HTTPChannel.allHeadersReceived = all_headers_received  # type: ignore[method-assign]
    http.HTTPChannel.requestDone = request_done  # type: ignore[method-assign]
    http.HTTPChannel.connectionLost = connection_lost  # type: ignore[method-assign]
