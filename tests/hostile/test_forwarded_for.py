"""A client talking straight to production workers (DEBUG off, so SECURE_PROXY_SSL_HEADER
on) cannot choose the address its per-address limits count: X-Forwarded-For is read only
from a proxy FORWARDED_ALLOW_IPS names, whether daphne takes proxy headers (the Procfile's
`--proxy-headers`) or not. With the loopback named, the header is believed."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import InvalidStatus

from tests.hostile.harm import production_env
from tests.integration.servers import ROOT, STARTED_CLUSTERS, Cluster, RedisServer
from tests.integration.wire import open_raw, socketio_url

CONNECTIONS_PER_ADDRESS = 5
RENAMES_PER_MINUTE = 5
WORKERS = 2
ATTEMPTS = 30
LIMITS = {
    "SOCKETIO_MAX_CONNECTIONS_PER_ADDRESS": str(CONNECTIONS_PER_ADDRESS),
    "HTTP_RENAMES_PER_MINUTE_PER_ADDRESS": str(RENAMES_PER_MINUTE),
}


class ProxyHeadersCluster(Cluster):
    """`runcluster --proxy-headers`, as the Procfile runs it."""

    def start(self) -> Cluster:
        env = self.env()
        self.reset_db()
        self.log = open(self.workdir / f"cluster-{self.port}.log", "wb")  # noqa: SIM115
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "runcluster", "--workers", str(self.workers),
             "--port", str(self.port), "--proxy-headers"],
            cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        STARTED_CLUSTERS.append(self)
        self.wait_for_workers(self.workers)
        return self


def production_cluster(
    redis_server: RedisServer,
    tmp_path_factory: pytest.TempPathFactory,
    proxy_headers: bool,
    **env: str,
) -> Iterator[Cluster]:
    kind = ProxyHeadersCluster if proxy_headers else Cluster
    cluster = kind(
        workers=WORKERS,
        redis_url=redis_server.url,
        workdir=tmp_path_factory.mktemp("cluster"),
        extra_env=production_env(**LIMITS, **env),
    ).start()
    yield cluster
    cluster.stop()
    print(f"---- cluster :{cluster.port} log ----\n{cluster.logs()[-4000:]}")


@pytest.fixture(
    scope="module", params=[False, True], ids=["daphne without", "daphne with --proxy-headers"]
)
def direct(
    request: pytest.FixtureRequest,
    redis_server: RedisServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Cluster]:
    """No proxy named: FORWARDED_ALLOW_IPS at its default."""
    yield from production_cluster(redis_server, tmp_path_factory, request.param)


@pytest.fixture(scope="module")
def behind_local_proxy(
    redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    """The loopback named as the proxy in front, daphne taking proxy headers (as behind
    nginx, docs/deploying.md)."""
    yield from production_cluster(
        redis_server, tmp_path_factory, True, FORWARDED_ALLOW_IPS="127.0.0.1"
    )


def exchange(cluster: Cluster, data: bytes) -> bytes:
    """Send `data` on a new connection; everything the server sends until it closes."""
    with socket.create_connection(("127.0.0.1", cluster.port), timeout=10) as conn:
        conn.sendall(data)
        received, deadline = b"", time.monotonic() + 10
        while time.monotonic() < deadline and (chunk := conn.recv(65536)):
            received += chunk
        return received


def rename_statuses(cluster: Cluster, user: str) -> list[int]:
    """ATTEMPTS renames of `user`, each with a new X-Forwarded-For, on new connections."""
    statuses = []
    for i in range(ATTEMPTS):
        body = json.dumps({"name": f"Forged {i}"}).encode()
        data = exchange(
            cluster,
            b"PUT /users/%s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"X-Forwarded-For: 198.51.100.%d\r\nConnection: close\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (user.encode(), i + 1, len(body), body),
        )
        statuses.append(int(data.split(b" ", 2)[1]))
    return statuses


async def open_sockets(cluster: Cluster) -> tuple[list[ClientConnection], int]:
    """ATTEMPTS WebSockets, each with a new X-Forwarded-For: (the open ones, refusals)."""
    opened, refused = [], 0
    for i in range(ATTEMPTS):
        try:
            ws = await open_raw(
                socketio_url(cluster), additional_headers={"X-Forwarded-For": f"203.0.113.{i + 1}"}
            )
        except InvalidStatus as exc:
            assert exc.response.status_code == 403
            refused += 1
        else:
            opened.append(ws)
    return opened, refused


def test_a_forged_x_forwarded_for_does_not_dodge_the_rename_limit(direct: Cluster) -> None:
    """Each request names a new address; all count against the peer's, so at most
    RENAMES_PER_MINUTE per worker pass, the rest get 429 (all 30 passed on the header)."""
    statuses = rename_statuses(direct, "3")
    assert set(statuses) <= {204, 429}, statuses
    assert statuses.count(204) <= RENAMES_PER_MINUTE * WORKERS, statuses


async def test_a_forged_x_forwarded_for_does_not_dodge_the_connection_cap(
    direct: Cluster,
) -> None:
    opened, refused = await open_sockets(direct)
    try:
        assert len(opened) <= CONNECTIONS_PER_ADDRESS * WORKERS
        assert refused >= ATTEMPTS - CONNECTIONS_PER_ADDRESS * WORKERS
    finally:
        for ws in opened:
            await ws.close()


def test_behind_a_named_proxy_each_forwarded_address_has_its_own_renames(
    behind_local_proxy: Cluster,
) -> None:
    assert rename_statuses(behind_local_proxy, "4") == [204] * ATTEMPTS


async def test_behind_a_named_proxy_each_forwarded_address_has_its_own_cap(
    behind_local_proxy: Cluster,
) -> None:
    opened, refused = await open_sockets(behind_local_proxy)
    try:
        assert (len(opened), refused) == (ATTEMPTS, 0)
    finally:
        for ws in opened:
            await ws.close()
