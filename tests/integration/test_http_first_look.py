"""Plain HTTP on the wire of a real cluster: answered by rooms.server.fast_http or by daphne, the
client sees one coherent HTTP/1.1 server (closing, keep-alive, pipelining, split heads)."""

from __future__ import annotations

import json
import socket
import time
import uuid

import pytest

from tests.integration.servers import Cluster

HOST = b"Host: 127.0.0.1\r\n"

pytestmark = pytest.mark.integration


def connect(cluster: Cluster) -> socket.socket:
    return socket.create_connection(("127.0.0.1", cluster.port), timeout=5)


def read_response(conn: socket.socket, pending: bytearray) -> tuple[int, dict[str, str], bytes]:
    """One response, framed by Content-Length or by the end of the connection:
    (status, headers lower-cased, body)."""
    while b"\r\n\r\n" not in pending:
        chunk = conn.recv(65536)
        assert chunk, f"connection closed before a response head: {bytes(pending)!r}"
        pending += chunk
    head, _, rest = bytes(pending).partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, value in (ln.split(":", 1) for ln in lines)}
    if "content-length" not in headers:
        while chunk := conn.recv(65536):
            rest += chunk
        return int(status_line.split()[1]), headers, rest
    length = int(headers["content-length"])
    while len(rest) < length:
        chunk = conn.recv(65536)
        assert chunk, "connection closed inside a response body"
        rest += chunk
    pending[:] = rest[length:]
    return int(status_line.split()[1]), headers, rest[:length]


def closed_by_server(conn: socket.socket, pending: bytearray) -> bool:
    return not pending and conn.recv(1) == b""


def room() -> str:
    return f"first-look-{uuid.uuid4().hex[:8]}"


def test_a_roster_asked_with_connection_close(shared_cluster: Cluster) -> None:
    with connect(shared_cluster) as conn:
        conn.sendall(
            f"GET /{room()}/users HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode()
        )
        pending = bytearray()
        status, headers, body = read_response(conn, pending)
        assert (status, json.loads(body)) == (200, [])
        assert headers["connection"] == "close"
        assert headers["x-workers-expected"] == headers["x-workers-responded"] == "2"
        assert closed_by_server(conn, pending)


def test_one_kept_alive_connection_for_a_roster_the_health_check_and_a_page(
    shared_cluster: Cluster,
) -> None:
    name = room()
    with connect(shared_cluster) as conn:
        pending = bytearray()
        conn.sendall(f"GET /{name}/users HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        assert read_response(conn, pending)[0] == 200
        conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        status, _, body = read_response(conn, pending)
        assert (status, json.loads(body)["ok"]) == (200, True)
        conn.sendall(f"GET /ui/{name}?id_user=1 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        status, headers, body = read_response(conn, pending)
        assert status == 200 and headers["content-type"].startswith("text/html")
        conn.sendall(b"GET /workers HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        status, _, body = read_response(conn, pending)
        assert (status, len(json.loads(body))) == (200, 2)
        assert closed_by_server(conn, pending)


def test_pipelined_requests_are_answered_in_order(shared_cluster: Cluster) -> None:
    name = room()
    with connect(shared_cluster) as conn:
        conn.sendall(
            f"GET /{name}/users HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
            f"GET /ui/{name}?id_user=1 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
            "GET /workers HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode()
        )
        pending = bytearray()
        answers = [read_response(conn, pending) for _ in range(3)]
        assert [status for status, _, _ in answers] == [200, 200, 200]
        assert json.loads(answers[0][2]) == []
        assert name.encode() in answers[1][2]
        assert len(json.loads(answers[2][2])) == 2
        assert closed_by_server(conn, pending)


def test_a_request_head_sent_in_pieces(shared_cluster: Cluster) -> None:
    with connect(shared_cluster) as conn:
        conn.sendall(f"GET /{room()}/users HTTP/1.1\r\n".encode())
        time.sleep(0.2)
        conn.sendall(b"Host: 127.0.0.1\r\nConnection: close\r\n\r\n")
        pending = bytearray()
        assert read_response(conn, pending)[0] == 200
        assert closed_by_server(conn, pending)


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GET /lobby/users HTTP/1.1\r\n" + HOST + b"X: a\x0bb\r\nConnection: close\r\n\r\n", 400),
        (
            b"GET /lobby/users HTTP/1.1\r\n"
            + HOST
            + b"Content-Length: 1\r\nConnection: close\r\n\r\n.",
            200,
        ),
        (b"DELETE /lobby/users HTTP/1.1\r\n" + HOST + b"Connection: close\r\n\r\n", 405),
    ],
)
def test_requests_outside_the_simple_ones_are_daphnes(
    shared_cluster: Cluster, request_bytes: bytes, status: int
) -> None:
    with connect(shared_cluster) as conn:
        conn.sendall(request_bytes)
        pending = bytearray()
        assert read_response(conn, pending)[0] == status
