"""Heroku Redis: `rediss://` with a self-signed certificate carries the whole cluster.

A real TLS-only redis-server (no plain-text port) under a 2-worker runcluster: the
directory (worker registry) and the bus (rosters, relayed events) both use it. Certificates
are verified by default, so the self-signed one is refused until REDIS_TLS_VERIFY=off says
to accept it, or REDIS_TLS_CA_FILE names it as the CA (its CN is `localhost`, so the URL
must name that host: an IP address does not match it).
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
from tests.integration.servers import Cluster, http, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]


class UnjoinedCluster(Cluster):
    """runcluster started without waiting for its workers to join (they cannot)."""

    def wait_for_workers(self, count: int, timeout: float = 30) -> list[dict[str, object]]:
        return []


def start_tls_cluster(workdir: Path, url: str, **env: str) -> Cluster:
    cluster = Cluster(workers=2, redis_url=url, workdir=workdir, extra_env=env)
    try:
        cluster.start()
    except Exception:
        print((workdir / f"cluster-{cluster.port}.log").read_text(errors="replace")[-4000:])
        cluster.stop()
        raise
    return cluster


@pytest.fixture(scope="module")
def tls_cluster(
    tls_redis: TlsRedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    """The cluster as on Heroku: REDIS_TLS_VERIFY=off accepts the self-signed certificate."""
    workdir = tmp_path_factory.mktemp("tls-cluster")
    cluster = start_tls_cluster(workdir, tls_redis.url, REDIS_TLS_VERIFY="off")
    yield cluster
    cluster.stop()
    print(f"---- cluster :{cluster.port} log ----\n{cluster.logs()[-4000:]}")


def test_by_default_the_self_signed_certificate_is_refused_with_a_clear_error(
    tls_redis: TlsRedisServer, tmp_path: Path
) -> None:
    """Without REDIS_TLS_VERIFY=off the workers do not join: /healthz answers 503 and the
    worker log names the failed certificate check and the setting that accepts it."""
    cluster = UnjoinedCluster(workers=2, redis_url=tls_redis.url, workdir=tmp_path).start()
    try:

        def refused() -> bool:
            try:
                status, _, _ = http(f"{cluster.url}/healthz", timeout=3)
            except OSError:
                return False
            logs = cluster.logs()
            return status == 503 and "failed verification" in logs and "REDIS_TLS_VERIFY" in logs

        wait_until(refused, 30, "/healthz 503 and a certificate error in the log")
        assert cluster.live_workers() == []
    finally:
        cluster.stop()
        print(f"---- cluster :{cluster.port} log ----\n{cluster.logs()[-2000:]}")


def test_the_certificate_named_as_ca_is_verified_and_accepted(
    tls_redis: TlsRedisServer, tmp_path: Path
) -> None:
    """REDIS_TLS_CA_FILE=<the server's certificate>, verification on, the URL naming the
    certificate's host (localhost): both workers join and /healthz is 200."""
    url = tls_redis.url.replace("127.0.0.1", "localhost")
    cluster = start_tls_cluster(tmp_path, url, REDIS_TLS_CA_FILE=str(tls_redis.cert))
    try:
        assert len(cluster.live_workers()) == 2
        status, _, body = http(f"{cluster.url}/healthz")
        assert (status, body) == (200, {"ok": True, "database": True, "channel_layer": True})
    finally:
        cluster.stop()


def test_certificate_fails_verification(tls_redis: TlsRedisServer) -> None:
    """Like Heroku's, the test certificate is self-signed: a verifying client is refused."""
    strict = redis.Redis.from_url(tls_redis.url, socket_timeout=2)
    with pytest.raises(redis.ConnectionError, match="certificate verify failed"):
        strict.ping()
    assert tls_redis.client().ping()


def test_workers_register_over_tls(tls_cluster: Cluster) -> None:
    """With REDIS_TLS_VERIFY=off both workers are in the directory and /healthz sees the
    bus answer."""
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
