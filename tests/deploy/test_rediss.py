"""Heroku Redis: `rediss://` with a self-signed certificate carries the whole cluster.

A real TLS-only redis-server (no plain-text port) under a 2-worker runcluster: the
directory (worker registry) and the channel layer (rosters, relayed events) both use it.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.deploy.processes import TlsRedisServer
from tests.integration.recording import close_all, spread_clients
from tests.integration.servers import Cluster, http

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]


@pytest.fixture(scope="module")
def tls_cluster(
    tls_redis: TlsRedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    workdir: Path = tmp_path_factory.mktemp("tls-cluster")
    cluster = Cluster(workers=2, redis_url=tls_redis.url, workdir=workdir)
    try:
        cluster.start()
    except Exception:
        print((workdir / f"cluster-{cluster.port}.log").read_text(errors="replace")[-4000:])
        cluster.stop()
        raise
    yield cluster
    cluster.stop()
    print(f"---- cluster :{cluster.port} log ----\n{cluster.logs()[-4000:]}")


def test_certificate_fails_verification(tls_redis: TlsRedisServer) -> None:
    """Like Heroku's, the test certificate is self-signed: a verifying client is refused."""
    strict = redis.Redis.from_url(tls_redis.url, socket_timeout=2)
    with pytest.raises(redis.ConnectionError, match="certificate verify failed"):
        strict.ping()
    assert tls_redis.client().ping()


def test_workers_register_over_tls(tls_cluster: Cluster) -> None:
    """Both workers are in the directory and /healthz sees the channel layer answer."""
    assert len(tls_cluster.live_workers()) == 2
    status, _, body = http(f"{tls_cluster.url}/healthz")
    assert (status, body) == (200, {"ok": True, "database": True, "channel_layer": True})


async def test_roster_and_events_cross_workers_over_tls(tls_cluster: Cluster) -> None:
    """Sockets on both workers appear in one roster; an identity-change reaches the other."""
    room = f"tls-{uuid.uuid4().hex[:8]}"
    clients = await spread_clients(tls_cluster.url, room, 6)
    try:
        first, other = clients[0], next(c for c in clients if c.procid != clients[0].procid)

        status, headers, body = await asyncio.to_thread(http, f"{tls_cluster.url}/{room}/users")
        assert status == 200
        assert (headers["X-Workers-Expected"], headers["X-Workers-Responded"]) == ("2", "2")
        assert sorted(e["id_socket"] for e in body) == sorted(c.sid for c in clients)

        await first.sio.emit("identity-change", {"name": "Johnny"})
        relayed = await other.wait_for("identity-change")
        assert relayed == {"name": "Johnny", "id_user": "1"}
    finally:
        await close_all(clients)
