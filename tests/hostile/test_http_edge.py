"""HTTP clients that bend the protocol, against production clusters (DEBUG off) with
SERVER_TUNING on and off: a body that trickles is cut off with 408, a client that
pipelines without end gets a bounded number of answers and a closed connection, and an
HTTP/1.1 request without Host gets 400."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from tests.hostile.clusters import BODY_DEADLINE_S, MAX_PIPELINED, SharedClusters
from tests.hostile.harm import Unharmed, pair_on_two_workers
from tests.integration.servers import Cluster


@pytest.fixture(scope="module", params=["on", "off"], ids=["tuning on", "tuning off"])
def cluster(request: pytest.FixtureRequest, hostile_clusters: SharedClusters) -> Iterator[Cluster]:
    yield from hostile_clusters.for_module("production", request.param)


def connect(cluster: Cluster) -> socket.socket:
    conn = socket.create_connection(("127.0.0.1", cluster.port), timeout=10)
    conn.settimeout(10)
    return conn


def read_until_closed(conn: socket.socket, within: float) -> tuple[bytes, bool]:
    """Everything the server sends within `within` s; (bytes, whether it closed)."""
    deadline, data = time.monotonic() + within, b""
    while (left := deadline - time.monotonic()) > 0:
        conn.settimeout(left)
        try:
            chunk = conn.recv(65536)
        except ConnectionResetError:
            return data, True
        except TimeoutError:
            return data, False
        if not chunk:
            return data, True
        data += chunk
    return data, False


def exchange(cluster: Cluster, data: bytes, within: float = 5) -> bytes:
    conn = connect(cluster)
    try:
        conn.sendall(data)
        return read_until_closed(conn, within)[0]
    finally:
        conn.close()


# ---- a body that trickles -----------------------------------------------------------


async def test_a_body_that_trickles_is_cut_off_with_408(cluster: Cluster) -> None:
    """A head with a Content-Length, then one byte every 0.5 s: 408 once the body is
    HTTP_BODY_TIMEOUT_S late, and the connection closed, twenty times at once, while the
    cluster keeps serving."""
    room = "trickle"
    first, second = await pair_on_two_workers(cluster, room)
    head = (
        b"PUT /users/1 HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: 1000\r\n\r\n"
    )
    conns = [connect(cluster) for _ in range(20)]
    stop = threading.Event()

    def trickle() -> None:
        for conn in conns:
            conn.sendall(head)
        while not stop.wait(0.5):
            for conn in conns:
                with contextlib.suppress(OSError):  # closed by the server: as asked
                    conn.send(b" ")

    sender = threading.Thread(target=trickle, daemon=True)
    started = time.monotonic()
    try:
        async with Unharmed(cluster, room, [first.sid, second.sid]).watching():
            sender.start()
            answers = await asyncio.gather(
                *(asyncio.to_thread(read_until_closed, conn, BODY_DEADLINE_S + 8) for conn in conns)
            )
        took = time.monotonic() - started
    finally:
        stop.set()
        sender.join(5)
        for conn in conns:
            conn.close()
        await first.close()
        await second.close()
    for data, closed in answers:
        assert data.startswith(b"HTTP/1.1 408"), data[:80]
        assert b"body" in data
        assert closed
    assert took < BODY_DEADLINE_S + 6


def test_a_body_in_pieces_within_the_deadline_is_served(cluster: Cluster) -> None:
    body = json.dumps({"name": "Slow but on time"}).encode()
    conn = connect(cluster)
    try:
        conn.sendall(
            b"PUT /users/2 HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Connection: close\r\nContent-Length: %d\r\n\r\n" % len(body)
        )
        for i in range(0, len(body), 8):
            time.sleep(BODY_DEADLINE_S / 10)
            conn.sendall(body[i : i + 8])
        data, closed = read_until_closed(conn, 5)
    finally:
        conn.close()
    assert data.startswith(b"HTTP/1.1 204"), data[:80]
    assert closed


# ---- pipelining ---------------------------------------------------------------------


async def test_pipelined_requests_are_bounded_per_connection(cluster: Cluster) -> None:
    """2,000 pipelined GETs from a client that reads only at the end: at most
    HTTP_MAX_PIPELINED_REQUESTS answers (in order), then the connection is closed."""
    room = "pipeline"
    first, second = await pair_on_two_workers(cluster, room)
    request = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    conn = connect(cluster)
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)

    def send_all() -> None:
        with contextlib.suppress(OSError):  # closed by the server: as asked
            conn.sendall(request * 2000)

    try:
        async with Unharmed(cluster, room, [first.sid, second.sid]).watching():
            sender = threading.Thread(target=send_all, daemon=True)
            sender.start()
            await asyncio.sleep(1.0)  # the client reads nothing for a while
            data, closed = await asyncio.to_thread(read_until_closed, conn, 10)
            sender.join(5)
    finally:
        conn.close()
        await first.close()
        await second.close()
    answered = data.count(b"HTTP/1.1 200")
    assert 1 <= answered <= MAX_PIPELINED + 1, answered
    assert closed
    assert data.count(b"HTTP/1.1 ") == answered  # nothing but the answers


def test_a_client_that_pipelines_a_few_is_answered_in_full(cluster: Cluster) -> None:
    requests = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" * (MAX_PIPELINED // 2)
    data = exchange(
        cluster, requests + b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    assert data.count(b"HTTP/1.1 200") == MAX_PIPELINED // 2 + 1


# ---- Host ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "target",
    [
        "/healthz",
        "/workers",
        "/lobby/users",
        "/lobby/users?hydrate=1",
        "/socket.io/?EIO=4&transport=polling",
        "/users",
        "/users/1",
        "/ui/",
        "/ui/lobby?id_user=1",
        "/admin/",
    ],
)
def test_an_http_1_1_request_without_host_gets_400(cluster: Cluster, target: str) -> None:
    """RFC 9112 section 3.2: a server MUST answer 400 to an HTTP/1.1 request without Host."""
    data = exchange(cluster, b"GET %s HTTP/1.1\r\nAccept: */*\r\n\r\n" % target.encode())
    assert data.startswith(b"HTTP/1.1 400"), data[:80]
    assert b"Host" in data


def test_a_websocket_handshake_without_host_gets_400(cluster: Cluster) -> None:
    data = exchange(
        cluster,
        b"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\n"
        b"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    )
    assert data.startswith(b"HTTP/1.1 400"), data[:80]


def test_a_request_with_host_or_in_http_1_0_is_served(cluster: Cluster) -> None:
    assert exchange(
        cluster, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    ).startswith(b"HTTP/1.1 200")
    assert b" 400 " not in exchange(cluster, b"GET /healthz HTTP/1.0\r\n\r\n")[:20]
