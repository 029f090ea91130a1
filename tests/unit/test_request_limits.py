"""rooms.server.limits on daphne's real HTTP channel over an in-memory transport: a body
over the cap is refused before the application sees the request, one under it is not."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from daphne.http_protocol import HTTPFactory, WebRequest
from daphne.server import Server
from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from rooms.server import limits
from tests.unit import daphne_http
from tests.unit.daphne_http import PEER, App, make_server, settle

CAP = 100


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[Clock]:
    """The limits installed with CAP on a fake clock; daphne's own methods afterwards."""
    monkeypatch.setattr(WebRequest, "gotLength", limits._got_length)
    monkeypatch.setattr(WebRequest, "handleContentChunk", limits._handle_content_chunk)
    monkeypatch.setattr(WebRequest, "requestReceived", limits._request_received)
    monkeypatch.setattr(HTTPFactory, "buildProtocol", HTTPFactory.buildProtocol)
    clock = Clock()
    limits.install(clock, max_body_bytes=CAP)
    yield clock


class HalfClosingTransport(StringTransport):
    """A TCP-like transport: its sending side can be shut down alone."""

    write_closed = False
    aborted = False

    def loseWriteConnection(self) -> None:
        self.write_closed = True

    def abortConnection(self) -> None:
        self.aborted = True


def connect(app: App, server: Server | None = None) -> HalfClosingTransport:
    return daphne_http.connect(app, HalfClosingTransport(peerAddress=PEER), server)


def head(*headers: str) -> bytes:
    return ("PUT /users/1 HTTP/1.1\r\nHost: h\r\n" + "".join(f"{h}\r\n" for h in headers)).encode()


def assert_refused(transport: StringTransport) -> None:
    status_line, _, rest = transport.value().partition(b"\r\n")
    assert status_line == b"HTTP/1.1 413 Content Too Large"
    assert json.loads(rest.partition(b"\r\n\r\n")[2]) == {
        "error": f"Request body larger than {CAP} bytes"
    }
    assert b"Connection: close" in rest


async def test_a_declared_length_over_the_cap_is_refused_before_its_body(clock: Clock) -> None:
    """413 as soon as the head is in; what follows is dropped, the app never called, and
    no "100 Continue" is promised after the refusal."""
    app = App()
    transport = connect(app)
    transport.protocol.dataReceived(head(f"Content-Length: {CAP + 1}", "Expect: 100-continue"))
    transport.protocol.dataReceived(b"\r\n" + b"x" * (CAP + 1))
    await settle()
    assert_refused(transport)
    assert b"100 Continue" not in transport.value()
    assert isinstance(transport.protocol, limits.Drain)
    assert app.requests == []


async def test_a_chunked_body_is_cut_off_where_it_passes_the_cap(clock: Clock) -> None:
    app = App()
    transport = connect(app)
    transport.protocol.dataReceived(head("Transfer-Encoding: chunked") + b"\r\n")
    transport.protocol.dataReceived(b"40\r\n" + b"x" * 64 + b"\r\n")
    assert transport.value() == b""
    transport.protocol.dataReceived(b"40\r\n" + b"x" * 64 + b"\r\n0\r\n\r\n")
    await settle()
    assert_refused(transport)
    assert app.requests == []


async def test_bodies_up_to_the_cap_reach_the_application(clock: Clock) -> None:
    """Exactly CAP bytes, by length then chunked on the same kept-alive connection."""
    app = App()
    transport = connect(app)
    body = b"y" * CAP
    transport.protocol.dataReceived(head(f"Content-Length: {CAP}") + b"\r\n" + body)
    await settle()
    chunked = b"32\r\n" + body[:50] + b"\r\n32\r\n" + body[50:] + b"\r\n0\r\n\r\n"
    transport.protocol.dataReceived(head("Transfer-Encoding: chunked") + b"\r\n" + chunked)
    await settle()
    assert [got for _, got in app.requests] == [body, body]
    assert transport.value().count(b"HTTP/1.1 204") == 2


async def test_a_refused_connection_lingers_then_is_aborted(clock: Clock) -> None:
    """After the 413 the sending side is shut down while what the client still sends is
    read and dropped (a close with unread data would reset the connection and could
    destroy the 413 before the client reads it); after LINGER_SECONDS it is aborted."""
    transport = connect(App())
    transport.protocol.dataReceived(head(f"Content-Length: {10 * CAP}") + b"\r\n")
    assert isinstance(transport, HalfClosingTransport)
    assert transport.write_closed and not transport.disconnecting
    transport.protocol.dataReceived(b"z" * 10 * CAP)
    clock.advance(limits.LINGER_SECONDS - 0.1)
    assert not transport.aborted
    clock.advance(0.1)
    assert transport.aborted


async def test_a_client_that_closes_ends_the_linger_and_daphnes_request(clock: Clock) -> None:
    """The channel hears of the lost connection as always, so daphne lets the request go."""
    server = make_server(App())
    transport = connect(App(), server)
    transport.protocol.dataReceived(head(f"Content-Length: {10 * CAP}") + b"\r\n")
    assert len(server.connections) == 1
    transport.protocol.connectionLost(ConnectionDone())
    (details,) = server.connections.values()
    assert "disconnected" in details  # daphne's application checker forgets it next
    assert clock.getDelayedCalls() == []
