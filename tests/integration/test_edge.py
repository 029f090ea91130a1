"""Every HTTP endpoint of a real cluster under Django's protections, with SERVER_TUNING on
and off: ALLOWED_HOSTS (400 JSON for a foreign Host, a 403 for a WebSocket handshake), the
SSL redirect and HSTS when they are on, /workers details for staff only, and request bodies
refused from their Content-Length (or cut off, chunked) before they fill a worker's memory.

Raw sockets throughout: the Host header, the body and its framing are exactly what the test
writes, and the response is read as it arrives.
"""

from __future__ import annotations

import json
import secrets
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.servers import Cluster, RedisServer, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.own_tuning]

FOREIGN = "evil.example"
CAP = 1024 * 1024  # HTTP_MAX_BODY_BYTES, set explicitly for these clusters
# Every endpoint of the contract: the cluster's own (rooms.http) and Django's.
ENDPOINTS = [
    "/workers",
    "/healthz",
    "/lobby/users",
    "/lobby/users?hydrate=1",
    "/socket.io/?EIO=4&transport=polling",
    "/users",
    "/users/1",
    "/ui/",
    "/ui/lobby?id_user=1",
    "/admin/",
    "/admin/login/",
]
JSON_ENDPOINTS = ENDPOINTS[:5]
PUBLIC_WORKER_FIELDS = {"procid", "sockets", "rooms"}


class HttpsProxiedCluster(Cluster):
    """A production-like cluster behind a TLS proxy: its readiness probe says https, as
    Heroku's router does in X-Forwarded-Proto, so the SSL redirect lets it through."""

    def live_workers(self) -> list[dict[str, Any]]:
        try:
            status, _, body = request(self, "GET", "/workers", {"X-Forwarded-Proto": "https"})
        except OSError:
            return []
        return json.loads(body) if status == 200 else []  # type: ignore[no-any-return]


def start(
    cls: type[Cluster], redis: RedisServer, workdir: Path, tuning: str, **env: str
) -> Iterator[Cluster]:
    cluster = cls(
        workers=1,
        redis_url=redis.url,
        workdir=workdir,
        extra_env={"SERVER_TUNING": tuning, "HTTP_MAX_BODY_BYTES": str(CAP), **env},
    ).start()
    yield cluster
    cluster.stop()
    print(f"---- cluster :{cluster.port} log ----\n{cluster.logs()[-4000:]}")


@pytest.fixture(scope="module", params=["on", "off"], ids=["tuning-on", "tuning-off"])
def dev(
    request: pytest.FixtureRequest,
    redis_server: RedisServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Cluster]:
    """The settings of a fresh checkout: DEBUG on, ALLOWED_HOSTS the loopback names."""
    yield from start(
        Cluster,
        redis_server,
        tmp_path_factory.mktemp("dev"),
        request.param,
        DEBUG="on",
        ALLOWED_HOSTS="127.0.0.1,localhost",
    )


@pytest.fixture(scope="module", params=["on", "off"], ids=["tuning-on", "tuning-off"])
def prod(
    request: pytest.FixtureRequest,
    redis_server: RedisServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Cluster]:
    """Production settings behind a TLS proxy (tests/deploy/processes.py production_env):
    DEBUG off, the SSL redirect, HSTS, X-Forwarded-Proto trusted."""
    yield from start(
        HttpsProxiedCluster,
        redis_server,
        tmp_path_factory.mktemp("prod"),
        request.param,
        DEBUG="off",
        SECRET_KEY=secrets.token_urlsafe(50),
        ALLOWED_HOSTS="127.0.0.1,localhost",
        SECURE_SSL_REDIRECT="on",
        SECURE_PROXY_SSL_HEADER="on",
        SECURE_HSTS_SECONDS="3600",
        SECURE_HSTS_INCLUDE_SUBDOMAINS="on",
        SECURE_HSTS_PRELOAD="off",
        SESSION_COOKIE_SECURE="on",
        CSRF_COOKIE_SECURE="on",
    )


# ---- raw HTTP ---------------------------------------------------------------------------


def connect(cluster: Cluster) -> socket.socket:
    return socket.create_connection(("127.0.0.1", cluster.port), timeout=10)


def head_bytes(
    method: str, target: str, headers: dict[str, str], host: str | None = "127.0.0.1"
) -> bytes:
    lines = [f"{method} {target} HTTP/1.1"]
    if host is not None:
        lines.append(f"Host: {host}")
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def read_response(conn: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One response (status, headers lower-cased, body), framed by Content-Length or by
    the end of the connection."""
    pending = b""
    while b"\r\n\r\n" not in pending:
        chunk = conn.recv(65536)
        assert chunk, f"connection closed before a response head: {pending!r}"
        pending += chunk
    head, _, body = pending.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, value in (ln.split(":", 1) for ln in lines)}
    status = int(status_line.split()[1])
    if status in (204, 304):
        return status, headers, b""
    if "content-length" in headers:
        while len(body) < int(headers["content-length"]):
            chunk = conn.recv(65536)
            assert chunk, "connection closed inside a response body"
            body += chunk
    else:
        while chunk := conn.recv(65536):
            body += chunk
    return status, headers, body


def request(
    cluster: Cluster,
    method: str,
    target: str,
    headers: dict[str, str] | None = None,
    *,
    host: str | None = "127.0.0.1",
    body: bytes = b"",
) -> tuple[int, dict[str, str], bytes]:
    extra = {"Connection": "close", **(headers or {})}
    if body:
        extra["Content-Length"] = str(len(body))
    with connect(cluster) as conn:
        conn.sendall(head_bytes(method, target, extra, host) + body)
        return read_response(conn)


def closed_by_server(conn: socket.socket, deadline: float = 10.0) -> bool:
    """Whether the server ends the connection (EOF or reset) within `deadline` seconds,
    discarding whatever else it sends."""
    conn.settimeout(deadline)
    try:
        while conn.recv(65536):
            pass
    except ConnectionResetError:
        pass
    except TimeoutError:
        return False
    return True


# ---- Host -------------------------------------------------------------------------------


@pytest.mark.parametrize("target", ENDPOINTS)
def test_a_foreign_host_gets_400_on_every_endpoint(dev: Cluster, target: str) -> None:
    """ALLOWED_HOSTS holds for the cluster's own endpoints as for Django's pages: a page on
    another site cannot read any of them through DNS rebinding."""
    status, headers, body = request(dev, "GET", target, host=FOREIGN)
    assert status == 400, body[:300]
    if target in JSON_ENDPOINTS:
        assert headers["content-type"] == "application/json"
        assert "error" in json.loads(body)


@pytest.mark.parametrize("target", ENDPOINTS)
def test_a_foreign_host_gets_400_with_production_settings(prod: Cluster, target: str) -> None:
    """With DEBUG off too, and before any SSL redirect (which would name the foreign host)."""
    for proto in ("http", "https"):
        status, _, body = request(
            prod, "GET", target, {"X-Forwarded-Proto": proto}, host=f"{FOREIGN}:443"
        )
        assert status == 400, (proto, body[:300])


@pytest.mark.parametrize("target", JSON_ENDPOINTS[:3])
def test_an_allowed_host_is_served(dev: Cluster, target: str) -> None:
    """The loopback names of ALLOWED_HOSTS, with or without a port, are served."""
    for host in ("127.0.0.1", f"localhost:{dev.port}"):
        assert request(dev, "GET", target, host=host)[0] == 200


def websocket_handshake(cluster: Cluster, host: str) -> int:
    key = "dGhlIHNhbXBsZSBub25jZQ=="
    headers = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Key": key}
    headers["Sec-WebSocket-Version"] = "13"
    with connect(cluster) as conn:
        target = "/socket.io/?EIO=4&transport=websocket&id_user=1"
        conn.sendall(head_bytes("GET", target, headers, host))
        pending = b""
        while b"\r\n" not in pending:
            chunk = conn.recv(4096)
            assert chunk, "closed before a status line"
            pending += chunk
        return int(pending.split(b" ", 2)[1])


def test_a_websocket_handshake_with_a_foreign_host_is_refused(dev: Cluster) -> None:
    """No Origin (so not refused as a browser from another site), but Host names a host
    outside ALLOWED_HOSTS: 403, while an allowed Host upgrades."""
    assert websocket_handshake(dev, FOREIGN) == 403
    assert websocket_handshake(dev, f"127.0.0.1:{dev.port}") == 101


# ---- SSL redirect and HSTS --------------------------------------------------------------


@pytest.mark.parametrize("target", JSON_ENDPOINTS)
def test_plain_http_is_redirected_to_https(prod: Cluster, target: str) -> None:
    """SECURE_SSL_REDIRECT: a request that came in over plain HTTP goes to https, as
    Django's SecurityMiddleware sends it."""
    status, headers, _ = request(prod, "GET", target, {"X-Forwarded-Proto": "http"})
    assert status == 301
    assert headers["location"] == f"https://127.0.0.1{target}"


@pytest.mark.parametrize("target", ENDPOINTS[:3])
def test_https_responses_carry_hsts_and_the_other_security_headers(
    prod: Cluster, target: str
) -> None:
    """Over https: Strict-Transport-Security from SECURE_HSTS_*, nosniff, Referrer-Policy
    and Cross-Origin-Opener-Policy, as on Django's pages."""
    status, headers, _ = request(prod, "GET", target, {"X-Forwarded-Proto": "https"})
    assert status == 200
    assert headers["strict-transport-security"] == "max-age=3600; includeSubDomains"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "same-origin"
    assert headers["cross-origin-opener-policy"] == "same-origin"


def test_no_hsts_over_plain_http_when_the_redirect_is_off(dev: Cluster) -> None:
    """HSTS is only sent over https (RFC 6797 section 7.2); DEBUG's defaults have it off."""
    status, headers, _ = request(dev, "GET", "/workers")
    assert status == 200
    assert "strict-transport-security" not in headers
    assert headers["x-content-type-options"] == "nosniff"


# ---- /workers ---------------------------------------------------------------------------


def login_cookie(cluster: Cluster, *, staff: bool) -> str:
    """A session of a new user in the cluster's database, made by Django's test Client."""
    name = f"u{uuid.uuid4().hex[:8]}"
    script = (
        "from django.contrib.auth.models import User; from django.test import Client\n"
        f"user = User.objects.create_user({name!r}, password='x', is_staff={staff})\n"
        "client = Client(); client.force_login(user)\n"
        "print(client.cookies['sessionid'].value)\n"
    )
    return cluster.shell(script).strip().splitlines()[-1]


def workers(cluster: Cluster, cookie: str | None = None) -> list[dict[str, Any]]:
    headers = {"X-Forwarded-Proto": "https"}
    if cookie:
        headers["Cookie"] = f"sessionid={cookie}"
    status, _, body = request(cluster, "GET", "/workers", headers)
    assert status == 200
    return json.loads(body)  # type: ignore[no-any-return]


def test_anonymous_clients_see_only_procid_sockets_and_rooms(prod: Cluster) -> None:
    """DEBUG off: no pid, host name, start time, memory or GC figures for anonymous
    clients, nor for a signed-in user who is not staff."""
    for cookie in (None, "not-a-session", login_cookie(prod, staff=False)):
        listed = workers(prod, cookie)
        assert listed and all(set(worker) == PUBLIC_WORKER_FIELDS for worker in listed)


def test_staff_see_every_worker_detail(prod: Cluster) -> None:
    """A staff user's Django session (the admin's) sees the whole worker record."""
    listed = workers(prod, login_cookie(prod, staff=True))
    assert listed
    for worker in listed:
        assert {"pid", "host", "started", "memory", "gc"} <= set(worker)
        assert set(worker) >= PUBLIC_WORKER_FIELDS


def test_debug_shows_every_worker_detail(dev: Cluster) -> None:
    """DEBUG on (a developer's machine): everything, without signing in."""
    listed = workers(dev)
    assert listed and all({"pid", "host", "memory", "gc"} <= set(worker) for worker in listed)


# ---- request bodies ---------------------------------------------------------------------


def worker_pid(cluster: Cluster) -> int:
    (pid,) = cluster.children()
    return pid


def peak_rss_kib(pid: int) -> int:
    """The worker's peak resident set (VmHWM): a body held only for a moment shows too."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


@pytest.mark.parametrize("target", ["/users/1", "/workers", "/lobby/users", "/admin/login/"])
def test_a_declared_length_over_the_cap_is_refused_at_once(dev: Cluster, target: str) -> None:
    """Content-Length 300 MB with a few bytes sent: 413 JSON at once, without waiting for
    (or reading) the body, and the connection is closed."""
    method = "PUT" if target == "/users/1" else "POST"
    with connect(dev) as conn:
        headers = {"Content-Type": "application/json", "Content-Length": str(300 * 1024 * 1024)}
        conn.sendall(head_bytes(method, target, headers) + b'{"name": "')
        started = time.monotonic()
        status, response_headers, body = read_response(conn)
        # A server waiting for the body would still be waiting at the socket's 10 s timeout
        # (the rest never comes), so half of it is "at once" on a busy machine too.
        assert time.monotonic() - started < 5.0
        assert status == 413
        assert response_headers["content-type"] == "application/json"
        assert "error" in json.loads(body)
        assert closed_by_server(conn)


def test_a_large_upload_leaves_the_worker_memory_alone(dev: Cluster) -> None:
    """A client that sends all of a 50 MB body anyway gets its 413, and the worker's peak
    memory grows by no more than a few MB."""
    pid = worker_pid(dev)
    before = peak_rss_kib(pid)
    size = 50 * 1024 * 1024
    with connect(dev) as conn:
        conn.sendall(head_bytes("PUT", "/users/1", {"Content-Length": str(size)}))

        def upload() -> None:
            piece = b"x" * 65536
            try:
                for _ in range(size // len(piece)):
                    conn.sendall(piece)
            except OSError:
                pass  # the server closed its side once it had answered

        sender = threading.Thread(target=upload, daemon=True)
        sender.start()
        status, _, body = read_response(conn)
        sender.join(30)
        assert status == 413, body
    assert request(dev, "GET", "/healthz")[0] == 200
    grown = peak_rss_kib(pid) - before
    assert grown < 8 * 1024, f"peak RSS grew by {grown} KiB"


def chunked(body: bytes, piece: int = 65536) -> Iterator[bytes]:
    for start in range(0, len(body), piece):
        part = body[start : start + piece]
        yield b"%x\r\n%s\r\n" % (len(part), part)
    yield b"0\r\n\r\n"


def test_a_chunked_body_is_cut_off_at_the_cap(dev: Cluster) -> None:
    """No Content-Length to refuse it from: the body is counted as it arrives and the
    request refused with 413 once it passes the cap; the connection is closed."""
    with connect(dev) as conn:
        headers = {"Content-Type": "application/json", "Transfer-Encoding": "chunked"}
        conn.sendall(head_bytes("PUT", "/users/1", headers))
        try:
            for piece in chunked(b"x" * (CAP + 256 * 1024)):
                conn.sendall(piece)
        except OSError:
            pass  # refused while sending: the response is still there to read
        status, headers_in, body = read_response(conn)
        assert status == 413
        assert headers_in["content-type"] == "application/json"
        assert "error" in json.loads(body)
        assert closed_by_server(conn)


def test_bodies_under_the_cap_are_served(dev: Cluster) -> None:
    """PUT /users/1 with a small body, by Content-Length or chunked, renames the user; a
    body between the view's own cap and HTTP_MAX_BODY_BYTES gets the view's 413 JSON."""
    for framing in ("length", "chunked"):
        name = f"Jo {framing} {uuid.uuid4().hex[:6]}"
        body = json.dumps({"name": name}).encode()
        with connect(dev) as conn:
            if framing == "length":
                headers = {"Content-Length": str(len(body)), "Connection": "close"}
                conn.sendall(head_bytes("PUT", "/users/1", headers) + body)
            else:
                headers = {"Transfer-Encoding": "chunked", "Connection": "close"}
                conn.sendall(head_bytes("PUT", "/users/1", headers) + b"".join(chunked(body)))
            assert read_response(conn)[0] == 204
        status, _, got = request(dev, "GET", "/users/1")
        assert (status, json.loads(got)["name"]) == (200, name)
    padded = json.dumps({"name": "x" * (CAP // 2)}).encode()
    status, headers, got = request(dev, "PUT", "/users/1", body=padded)
    assert status == 413 and "error" in json.loads(got)


def test_kept_alive_connections_go_on_after_a_body(dev: Cluster) -> None:
    """A request with a small body, then another on the same connection: the body
    counter starts afresh for each request."""
    body = json.dumps({"name": "John"}).encode()
    with connect(dev) as conn:
        for _ in range(3):
            headers = {"Content-Length": str(len(body))}
            conn.sendall(head_bytes("PUT", "/users/1", headers) + body)
            assert read_response(conn)[0] == 204
    wait_until(lambda: request(dev, "GET", "/healthz")[0] == 200, 5, "a healthy worker")


# ---- Methods ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "allowed"),
    [
        ("/workers", "GET, HEAD"),
        ("/healthz", "GET, HEAD"),
        ("/lobby/users", "GET, HEAD"),
    ],
)
def test_a_method_an_endpoint_does_not_serve_is_405_json_with_allow(
    dev: Cluster, target: str, allowed: str
) -> None:
    status, headers, body = request(dev, "DELETE", target)
    assert status == 405
    assert headers["allow"] == allowed
    assert json.loads(body) == {"error": "Method not allowed"}
