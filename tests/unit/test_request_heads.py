"""rooms.server.request_heads on daphne's real HTTP channel over an in-memory transport:
an HTTP/1.1 head without Host is refused, a body has a deadline after its head, and a
connection answers a bounded number of pipelined requests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from daphne.http_protocol import HTTPFactory, WebRequest
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.web import http

from rooms.server import limits, request_heads
from tests.unit import daphne_http
from tests.unit.daphne_http import PEER, App, settle

HEAD_S = 10.0
BODY_S = 3.0
MAX_PIPELINED = 4
CAP = 100


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[Clock]:
    """request_heads (and limits) installed on a fake clock; Twisted's and daphne's own
    methods afterwards."""
    for name, original in [
        ("connectionMade", request_heads._connection_made),
        ("dataReceived", request_heads._data_received),
        ("allHeadersReceived", request_heads._all_headers_received),
        ("allContentReceived", request_heads._all_content_received),
        ("requestDone", request_heads._request_done),
        ("connectionLost", request_heads._connection_lost),
    ]:
        monkeypatch.setattr(http.HTTPChannel, name, original)
    monkeypatch.setattr(WebRequest, "gotLength", limits._got_length)
    monkeypatch.setattr(WebRequest, "handleContentChunk", limits._handle_content_chunk)
    monkeypatch.setattr(WebRequest, "requestReceived", limits._request_received)
    monkeypatch.setattr(HTTPFactory, "buildProtocol", HTTPFactory.buildProtocol)
    clock = Clock()
    limits.install(clock, max_body_bytes=CAP)
    request_heads.install(
        clock, deadline_s=HEAD_S, body_deadline_s=BODY_S, max_pipelined=MAX_PIPELINED
    )
    yield clock


class Transport(StringTransport):
    """A TCP-like transport that records an abort."""

    aborted = False

    def loseWriteConnection(self) -> None:
        self.disconnecting = True

    def abortConnection(self) -> None:
        self.aborted = True


def connect(app: App) -> Transport:
    return daphne_http.connect(app, Transport(peerAddress=PEER))


def put(body_length: int, *headers: str) -> bytes:
    lines = ["PUT /users/1 HTTP/1.1", "Host: h", f"Content-Length: {body_length}", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def test_an_http_1_1_request_without_host_gets_400(clock: Clock) -> None:
    """RFC 9112 section 3.2; the application never sees it, nor what follows it."""
    app = App()
    transport = connect(app)
    transport.protocol.dataReceived(
        b"GET /users HTTP/1.1\r\nAccept: */*\r\n\r\nGET /users HTTP/1.1\r\nHost: h\r\n\r\n"
    )
    await settle()
    assert transport.value() == request_heads.RESPONSE_400_HOST
    assert transport.disconnecting
    assert app.requests == []
    clock.advance(request_heads.CLOSE_GRACE_S)
    assert transport.aborted  # a client that does not read the 400 is cut off


async def test_with_host_or_in_http_1_0_a_request_is_served(clock: Clock) -> None:
    app = App()
    for head in [b"GET /users HTTP/1.1\r\nHost: h\r\n\r\n", b"GET /users HTTP/1.0\r\n\r\n"]:
        transport = connect(app)
        transport.protocol.dataReceived(head)
        await settle()
        assert b" 204 " in transport.value()
    assert app.requests == [("/users", b""), ("/users", b"")]


async def test_a_body_that_trickles_gets_408_at_its_deadline(clock: Clock) -> None:
    """Each byte of the body restarted Twisted's idle timer; the head deadline had ended
    with the head."""
    app = App()
    transport = connect(app)
    transport.protocol.dataReceived(put(10))
    for _ in range(int(BODY_S) * 2 - 1):
        clock.advance(0.5)
        transport.protocol.dataReceived(b" ")
    assert transport.value() == b""
    clock.advance(0.5)
    await settle()
    assert transport.value() == request_heads.RESPONSE_408_BODY
    assert transport.disconnecting
    transport.protocol.dataReceived(b"    ")  # the rest, too late: dropped
    await settle()
    assert app.requests == []


async def test_a_body_within_its_deadline_is_served_and_the_deadline_ends(clock: Clock) -> None:
    app = App()
    transport = connect(app)
    transport.protocol.dataReceived(put(4))
    clock.advance(BODY_S - 0.1)
    transport.protocol.dataReceived(b"abcd")
    await settle()
    clock.advance(HEAD_S - 0.2)  # the next head's deadline, not the body's
    assert transport.value().startswith(b"HTTP/1.1 204")
    assert not transport.disconnecting
    assert app.requests == [("/users/1", b"abcd")]


async def test_a_chunked_body_has_the_deadline_too(clock: Clock) -> None:
    transport = connect(App())
    transport.protocol.dataReceived(
        b"PUT /users/1 HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nab"
    )
    clock.advance(BODY_S)
    assert transport.value() == request_heads.RESPONSE_408_BODY


async def test_a_body_refused_for_its_size_gets_no_408_later(clock: Clock) -> None:
    transport = connect(App())
    transport.protocol.dataReceived(put(CAP + 1))
    clock.advance(BODY_S)
    assert transport.value() == limits.response_413(CAP)


async def test_pipelined_requests_past_the_bound_close_the_connection(clock: Clock) -> None:
    """Ten requests in one write: the first and MAX_PIPELINED read ahead of it are
    answered, the last with `Connection: close`; the rest is dropped."""
    app = App()
    transport = connect(app)
    transport.protocol.dataReceived(b"GET /healthz HTTP/1.1\r\nHost: h\r\n\r\n" * 10)
    await settle()
    answers = transport.value().split(b"HTTP/1.1 ")[1:]
    assert len(answers) == MAX_PIPELINED + 1
    assert [b"Connection: close" in answer for answer in answers] == [False] * MAX_PIPELINED + [
        True
    ]
    assert transport.disconnecting
    assert len(app.requests) == MAX_PIPELINED + 1
    clock.advance(request_heads.CLOSE_GRACE_S)
    assert transport.aborted  # not read in time: cut off


async def test_requests_sent_one_after_another_are_not_pipelined(clock: Clock) -> None:
    app = App()
    transport = connect(app)
    for _ in range(3 * MAX_PIPELINED):
        transport.protocol.dataReceived(b"GET /healthz HTTP/1.1\r\nHost: h\r\n\r\n")
        await settle()
    assert transport.value().count(b"HTTP/1.1 204") == 3 * MAX_PIPELINED
    assert not transport.disconnecting


def test_install_refuses_nonsense(clock: Clock) -> None:
    with pytest.raises(ValueError, match="body_deadline_s"):
        request_heads.install(clock, deadline_s=1, body_deadline_s=0)
    with pytest.raises(ValueError, match="max_pipelined"):
        request_heads.install(clock, deadline_s=1, max_pipelined=0)
