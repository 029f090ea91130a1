"""Slow and malformed request heads cannot hold a worker's connections: a head that
trickles in past HTTP_HEAD_TIMEOUT_S gets 408, a connection that says nothing is closed,
bare LF line ends get 400, and well-behaved clients are served throughout."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator

import pytest

from tests.hostile.clusters import HEAD_DEADLINE_S as DEADLINE_S
from tests.hostile.clusters import SharedClusters
from tests.integration.servers import Cluster, http


@pytest.fixture(scope="module", params=["on", "off"], ids=["tuning on", "tuning off"])
def cluster(request: pytest.FixtureRequest, hostile_clusters: SharedClusters) -> Iterator[Cluster]:
    yield from hostile_clusters.for_module("development", request.param)


def connect(cluster: Cluster) -> socket.socket:
    conn = socket.create_connection(("127.0.0.1", cluster.port), timeout=10)
    conn.settimeout(10)
    return conn


def read_until_closed(conn: socket.socket, within: float) -> tuple[bytes, float]:
    """Everything the server sends until it closes; (bytes, seconds it took)."""
    started, data = time.monotonic(), b""
    conn.settimeout(within)
    while True:
        try:
            chunk = conn.recv(65536)
        except (ConnectionResetError, TimeoutError):
            break
        if not chunk:
            break
        data += chunk
    return data, time.monotonic() - started


def trickle(conn: socket.socket, head: bytes, every: float, stop: Callable[[], bool]) -> None:
    for byte in head:
        if stop():
            return
        try:
            conn.sendall(bytes([byte]))
        except OSError:
            return
        time.sleep(every)


def test_a_head_trickling_in_past_the_deadline_gets_408(cluster: Cluster) -> None:
    """One byte every 0.3 s restarted Twisted's idle timer forever."""
    conn = connect(cluster)
    started = time.monotonic()
    head = b"GET /users HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 200 + b"\r\n\r\n"
    trickle(conn, head, 0.3, lambda: time.monotonic() - started > DEADLINE_S + 1)
    data, _ = read_until_closed(conn, within=DEADLINE_S + 3)
    assert data.startswith(b"HTTP/1.1 408"), data[:80]
    assert time.monotonic() - started < DEADLINE_S + 4
    assert http(f"{cluster.url}/users")[0] == 200  # others are served meanwhile


def test_a_websocket_handshake_trickling_in_is_cut_off_too(cluster: Cluster) -> None:
    conn = connect(cluster)
    started = time.monotonic()
    head = (
        b"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    )
    trickle(conn, head, 0.3, lambda: time.monotonic() - started > DEADLINE_S + 1)
    data, _ = read_until_closed(conn, within=DEADLINE_S + 3)
    assert data.startswith(b"HTTP/1.1 408"), data[:80]


def test_a_kept_alive_connection_gets_the_deadline_for_each_request(cluster: Cluster) -> None:
    conn = connect(cluster)
    conn.sendall(b"GET /users HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    assert conn.recv(65536).startswith(b"HTTP/1.1 200")
    conn.sendall(b"GET /users HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # and never the blank line
    data, took = read_until_closed(conn, within=DEADLINE_S + 5)
    assert data.startswith(b"HTTP/1.1 408"), data[:80]
    assert took < DEADLINE_S + 3


def test_a_connection_that_says_nothing_is_closed_after_the_deadline(cluster: Cluster) -> None:
    conn = connect(cluster)
    data, took = read_until_closed(conn, within=DEADLINE_S + 5)
    assert data == b"" and took < DEADLINE_S + 3


@pytest.mark.parametrize(
    "cut", [19, 20, 21, 22], ids=["before CR", "between CR and LF", "after LF", "one in"]
)
def test_a_head_in_pieces_within_the_deadline_is_served(cluster: Cluster, cut: int) -> None:
    head = b"GET /users HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    conn = connect(cluster)
    conn.sendall(head[:cut])
    time.sleep(0.2)
    conn.sendall(head[cut:])
    data, _ = read_until_closed(conn, within=5)
    assert data.startswith(b"HTTP/1.1 200"), data[:80]


@pytest.mark.parametrize(
    "head",
    [b"GET /users HTTP/1.1\nHost: 127.0.0.1\n\n", b"GET /users HTTP/1.1\r\nHost: x\n\r\n\r\n"],
    ids=["all bare LF", "one bare LF"],
)
def test_bare_lf_line_ends_get_400_at_once(cluster: Cluster, head: bytes) -> None:
    conn = connect(cluster)
    conn.sendall(head)
    data, took = read_until_closed(conn, within=DEADLINE_S + 5)
    assert data.startswith(b"HTTP/1.1 400"), data[:80]
    assert b"CRLF" in data
    assert took < 1.0 * DEADLINE_S  # not the deadline: at once


def test_fifty_slow_clients_do_not_stop_the_well_behaved(cluster: Cluster) -> None:
    conns = [connect(cluster) for _ in range(50)]
    for conn in conns:
        conn.sendall(b"GET /users HTTP/1.1\r\n")
    started = time.monotonic()
    assert http(f"{cluster.url}/users", timeout=1)[0] == 200
    assert time.monotonic() - started < 1.0
    time.sleep(DEADLINE_S + 1)
    for conn in conns:
        data, _ = read_until_closed(conn, within=3)
        assert data.startswith(b"HTTP/1.1 408"), data[:80]
