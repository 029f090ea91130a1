"""Which requests rooms.server.http_head calls simple: only those it is certain of."""

from __future__ import annotations

import pytest

from rooms.server.http_head import MAX_HEAD, SimpleRequest, parse_simple_request


def test_a_roster_request_as_the_benchmark_sends_it() -> None:
    request = parse_simple_request(
        b"GET /lobby%2F1/users?hydrate=1 HTTP/1.1\r\nHost: 127.0.0.1:8000\r\n"
        b"Connection: close\r\n\r\n"
    )
    assert request == SimpleRequest(
        method="GET",
        http_version="1.1",
        raw_path=b"/lobby%2F1/users",
        query_string=b"hydrate=1",
        headers=[(b"host", b"127.0.0.1:8000"), (b"connection", b"close")],
        keep_alive=False,
    )


@pytest.mark.parametrize(
    ("head", "keep_alive"),
    [
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", True),
        (b"GET / HTTP/1.1\r\nHost: x\r\nConnection: Keep-Alive, TE\r\n\r\n", True),
        (b"GET / HTTP/1.1\r\nHost: x\r\nConnection: TE\r\nConnection: CLOSE\r\n\r\n", False),
        (b"GET / HTTP/1.0\r\n\r\n", False),  # Twisted closes HTTP/1.0 connections
        (b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", False),
    ],
)
def test_whether_the_connection_stays_open(head: bytes, keep_alive: bool) -> None:
    request = parse_simple_request(head)
    assert request is not None
    assert request.keep_alive is keep_alive


def test_head_requests_and_header_whitespace() -> None:
    request = parse_simple_request(
        b"HEAD /healthz HTTP/1.1\r\nAccept:  a/b, c/d \t\r\nHost: x\r\n\r\n"
    )
    assert request is not None
    assert (request.method, request.headers) == (
        "HEAD",
        [(b"accept", b"a/b, c/d"), (b"host", b"x")],
    )


def test_an_http_1_1_request_without_host_is_not_simple() -> None:
    """RFC 9112 section 3.2 requires Host in HTTP/1.1: daphne's channel answers it 400
    (rooms.server.request_heads); HTTP/1.0 needs none."""
    assert parse_simple_request(b"GET /healthz HTTP/1.1\r\nAccept: */*\r\n\r\n") is None
    assert parse_simple_request(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n") is not None
    assert parse_simple_request(b"GET /healthz HTTP/1.0\r\n\r\n") is not None


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"GET / HTTP/1.1\r\nHost: x\r\n",  # head not complete yet
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\n\r\n",  # a second, pipelined request
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\nx",  # bytes after the head
        b"POST / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"get / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET http://x/ HTTP/1.1\r\nHost: x\r\n\r\n",  # absolute form
        b"GET / HTTP/2.0\r\n\r\n",
        b"GET /a b HTTP/1.1\r\n\r\n",
        b"GET /\xc3\xa9 HTTP/1.1\r\nHost: x\r\n\r\n",  # non-ASCII path
        b"GET / HTTP/1.1\r\nHost: x\r\nX: \xc3\xa9\r\n\r\n",  # non-ASCII value
        b"GET / HTTP/1.1\r\nHost: x\r\nX: a\x00b\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nX_Y: a\r\n\r\n",  # daphne drops such names: its call
        b"GET / HTTP/1.1\r\nHost: x\r\nX : a\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n folded\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nno colon\r\n\r\n",
        b"GET / HTTP/1.1\nHost: x\n\n",  # bare line feeds
        b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"GET /socket.io/ HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nDaphne-Root-Path: /x\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nX: " + b"a" * MAX_HEAD + b"\r\n\r\n",
    ],
)
def test_anything_else_is_not_simple(data: bytes) -> None:
    assert parse_simple_request(data) is None
