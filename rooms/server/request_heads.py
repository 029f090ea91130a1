"""Requests must arrive whole and in time: heads with CRLF line ends and, in HTTP/1.1, a
Host; bodies within a deadline; and only so many read ahead of their answers.

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

An HTTP/1.1 request without a Host header is answered 400 before any application sees it
(RFC 9112 section 3.2: a server MUST); HTTP/1.0 requests need none.

A request body must have arrived whole within its own deadline, counted from the end of
its head: a body that trickles in (a Content-Length, then a byte now and then) restarts
Twisted's idle timer with every byte, as a trickling head does. Past the deadline the
connection gets 408.

Twisted answers pipelined requests one at a time and in order (head-of-line blocking),
reading at most 16 KiB ahead (HTTPChannel._optimisticEagerReadSize), but with no bound
on how many it answers for a client that keeps sending and reads nothing: each answer
goes into the kernel's buffers until they are full. Here a connection answers at most
`max_pipelined` requests in a row that were read ahead of the previous answer; the last
of them is answered with `Connection: close` and the connection closed, what follows
dropped (RFC 9112 section 9.3.2: a client that pipelines retries, on a new connection,
what a closed connection left unanswered). A client that does not read at all is stopped
by Twisted's backpressure: once its unsent answers fill the kernel's buffers and the
transport's (64 KiB, FileDescriptor.bufferSize), the channel stops reading, and the next
head's deadline closes the connection (RFC 9110 section 15.5.9).

Whenever one of these closes a connection, the answer is written and the connection
closed; a client that does not read it is cut off `CLOSE_GRACE_S` later.

Always on, like rooms.server.limits; patches twisted.web.http.HTTPChannel, the one
channel class daphne serves HTTP/1.1 with, in the worker process only.
"""

from __future__ import annotations

from typing import Any

from twisted.web import http

from rooms.server.limits import LINGER_SECONDS

_data_received: Any = http.HTTPChannel.dataReceived
_all_headers_received: Any = http.HTTPChannel.allHeadersReceived
_request_done: Any = http.HTTPChannel.requestDone
_connection_made: Any = http.HTTPChannel.connectionMade
_connection_lost: Any = http.HTTPChannel.connectionLost
_all_content_received: Any = http.HTTPChannel.allContentReceived

# the refused body's linger (nginx's lingering_timeout): a client on a slow link still
# reads the answer, one that never reads holds the connection briefly
CLOSE_GRACE_S = LINGER_SECONDS

_deadline_s: float = 10.0
_body_deadline_s: float = 30.0
_max_pipelined: int = 100
_reactor: Any = None


def _json_response(status: bytes, error: str) -> bytes:
    body = b'{"error":"%s"}' % error.encode()
    return (
        b"HTTP/1.1 %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
        b"Connection: close\r\n\r\n%s" % (status, len(body), body)
    )


RESPONSE_408 = _json_response(b"408 Request Timeout", "Request head not complete in time")
RESPONSE_400_LF = _json_response(b"400 Bad Request", "Request lines must end with CRLF")
RESPONSE_408_BODY = _json_response(b"408 Request Timeout", "Request body not complete in time")
RESPONSE_400_HOST = _json_response(b"400 Bad Request", "HTTP/1.1 requests must have a Host header")


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


def _close(channel: Any, response: bytes) -> None:
    """Write `response`, then close; abort if the client has not read it in time."""
    channel.refused = True
    transport = channel.transport
    transport.write(response)
    transport.loseConnection()
    channel.abort_deadline = _reactor.callLater(CLOSE_GRACE_S, transport.abortConnection)


def _expire(channel: Any) -> None:
    channel.head_deadline = None
    if channel.transport is None:
        return
    if channel.head_bytes:
        _close(channel, RESPONSE_408)
    else:
        channel.transport.abortConnection()


def _expire_body(channel: Any) -> None:
    channel.body_deadline = None
    if channel.transport is not None and not getattr(channel, "refused", False):
        _close(channel, RESPONSE_408_BODY)


def _stop_body_deadline(channel: Any) -> None:
    deadline = getattr(channel, "body_deadline", None)
    if deadline is not None and deadline.active():
        deadline.cancel()
    channel.body_deadline = None


def _reading_a_head(channel: Any) -> bool:
    return getattr(channel, "head_deadline", None) is not None


def connection_made(channel: Any) -> None:
    _connection_made(channel)
    _start(channel)


def data_received(channel: Any, data: bytes) -> None:
    if getattr(channel, "refused", False):
        return  # answered and closing: what the client still sends is dropped
    if _reading_a_head(channel):
        head = data.split(b"\r\n\r\n", 1)[0]  # what follows the head is a body
        text = channel.head_last + head
        if b"\n" in text and text.replace(b"\r\n", b"").find(b"\n") >= 0:
            _cancel(channel)
            _close(channel, RESPONSE_400_LF)
            return
        channel.head_bytes += len(data)
        channel.head_last = b"\r" if head.endswith(b"\r") else b""  # a CR whose LF comes next
    _data_received(channel, data)


def all_headers_received(channel: Any) -> None:
    _cancel(channel)
    request = channel.requests[-1]
    if channel._version == b"HTTP/1.1" and not request.requestHeaders.hasHeader(b"host"):
        _close(channel, RESPONSE_400_HOST)
        return
    _all_headers_received(channel)
    if getattr(channel, "replaying", False):  # read while the previous one was answered
        channel.pipelined = getattr(channel, "pipelined", 0) + 1
        if channel.pipelined >= _max_pipelined and channel.persistent:
            channel.persistent = False  # this one is answered, then the connection closes
            channel.pipelining_cut = True
            request.responseHeaders.setRawHeaders(b"Connection", [b"close"])
    else:
        channel.pipelined = 0
    if channel.length != 0 and not getattr(channel, "refused", False):
        channel.body_deadline = _reactor.callLater(_body_deadline_s, _expire_body, channel)


def all_content_received(channel: Any) -> None:
    if getattr(channel, "refused", False):
        return  # refused at its head: the application never sees it
    _stop_body_deadline(channel)
    _all_content_received(channel)


def request_done(channel: Any, request: Any) -> None:
    channel.replaying = True  # Twisted parses what it read ahead, if anything, from here
    try:
        _request_done(channel, request)
    finally:
        channel.replaying = False
    if channel.transport is None:
        return
    if getattr(channel, "pipelining_cut", False):
        abort = channel.transport.abortConnection  # closing: the client may not be reading
        channel.abort_deadline = _reactor.callLater(CLOSE_GRACE_S, abort)
    elif channel.persistent and not channel._handlingRequest:
        _start(channel)  # the next request's head, on a kept-alive connection


def connection_lost(channel: Any, reason: Any) -> None:
    _cancel(channel)
    _stop_body_deadline(channel)
    abort = getattr(channel, "abort_deadline", None)
    if abort is not None and abort.active():
        abort.cancel()
    _connection_lost(channel, reason)


def install(
    reactor: Any, *, deadline_s: float, body_deadline_s: float = 30.0, max_pipelined: int = 100
) -> None:
    """Every HTTP/1.1 connection made from now on has `deadline_s` for each request head,
    `body_deadline_s` for each body after its head, and answers at most `max_pipelined`
    requests read ahead in a row (idempotent; the last values given hold)."""
    global _deadline_s, _body_deadline_s, _max_pipelined, _reactor
    if deadline_s <= 0:
        raise ValueError(f"deadline_s must be > 0, not {deadline_s}")
    if body_deadline_s <= 0:
        raise ValueError(f"body_deadline_s must be > 0, not {body_deadline_s}")
    if max_pipelined < 1:
        raise ValueError(f"max_pipelined must be >= 1, not {max_pipelined}")
    _deadline_s, _body_deadline_s, _max_pipelined = deadline_s, body_deadline_s, max_pipelined
    _reactor = reactor
    http.HTTPChannel.connectionMade = connection_made  # type: ignore[method-assign]
    http.HTTPChannel.dataReceived = data_received  # type: ignore[method-assign]
    http.HTTPChannel.allHeadersReceived = all_headers_received  # type: ignore[method-assign]
    http.HTTPChannel.allContentReceived = all_content_received  # type: ignore[method-assign]
    http.HTTPChannel.requestDone = request_done  # type: ignore[method-assign]
    http.HTTPChannel.connectionLost = connection_lost  # type: ignore[method-assign]
