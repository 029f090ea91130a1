"""/workers' details and /metrics for an operator's tools under production settings:
WORKERS_TOKEN and METRICS_TOKEN, sent as `Authorization: Bearer <token>`, or as the password
of HTTP Basic for tools that can put credentials only in a URL (http://ops:<token>@host/workers:
bench/faults.sh's harness)."""

from __future__ import annotations

import base64
import json
import secrets
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.conftest import module_cluster
from tests.integration.servers import Cluster, RedisServer

pytestmark = [pytest.mark.integration, pytest.mark.daphne]

TOKEN = secrets.token_urlsafe(32)
METRICS_TOKEN = secrets.token_urlsafe(32)
PUBLIC_WORKER_FIELDS = {"procid", "sockets", "rooms"}


@pytest.fixture(scope="module")
def cluster(
    redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    """Production settings as bench/lib.sh starts them (plain HTTP on the loopback)."""
    yield from module_cluster(
        2,
        redis_server,
        tmp_path_factory,
        DEBUG="off",
        SECRET_KEY=secrets.token_urlsafe(50),
        ALLOWED_HOSTS="127.0.0.1,localhost",
        SECURE_SSL_REDIRECT="off",
        SECURE_PROXY_SSL_HEADER="off",
        WORKERS_TOKEN=TOKEN,
        METRICS_TOKEN=METRICS_TOKEN,
    )


def workers(cluster: Cluster, authorization: str | None = None) -> list[dict[str, Any]]:
    headers = {"Authorization": authorization} if authorization else {}
    request = urllib.request.Request(f"{cluster.url}/workers", headers=headers)
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.status == 200
        return json.loads(response.read())  # type: ignore[no-any-return]


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_the_token_shows_every_worker_detail(cluster: Cluster) -> None:
    """Bearer or Basic (any user name), the pids are those of the cluster's workers."""
    for authorization in (f"Bearer {TOKEN}", basic("ops", TOKEN), basic("", TOKEN)):
        listed = workers(cluster, authorization)
        assert sorted(w["pid"] for w in listed) == sorted(cluster.children()), authorization
        assert all({"pid", "host", "started", "memory", "gc"} <= set(w) for w in listed)


def test_without_the_token_only_the_public_fields(cluster: Cluster) -> None:
    """No header, a wrong or truncated token, the token as a Basic user name, another
    scheme: procid, sockets and rooms only."""
    for authorization in (
        None,
        "Bearer wrong",
        f"Bearer {TOKEN[:-1]}",
        f"Bearer {TOKEN} extra",
        basic(TOKEN, ""),
        f"Token {TOKEN}",
        "Basic !!not-base64!!",
    ):
        listed = workers(cluster, authorization)
        assert listed and all(set(w) == PUBLIC_WORKER_FIELDS for w in listed), authorization


def test_metrics_need_their_own_token(cluster: Cluster) -> None:
    """/metrics answers a scraper holding METRICS_TOKEN with both workers' series; without
    it (or with WORKERS_TOKEN) 401 with a Bearer challenge, and nothing of the figures."""
    request = urllib.request.Request(
        f"{cluster.url}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        text = response.read().decode()
    up = next(f for f in text_string_to_metric_families(text) if f.name.endswith("_worker_up"))
    assert len(up.samples) == 2 and all(s.value == 1.0 for s in up.samples)
    for authorization in (None, f"Bearer {TOKEN}", f"Bearer {METRICS_TOKEN[:-1]}"):
        headers = {"Authorization": authorization} if authorization else {}
        refused = urllib.request.Request(f"{cluster.url}/metrics", headers=headers)
        with pytest.raises(urllib.error.HTTPError) as raised:
            urllib.request.urlopen(refused, timeout=5)
        assert raised.value.code == 401, authorization
        assert raised.value.headers["WWW-Authenticate"].startswith("Bearer")
        assert b"identity_playground" not in raised.value.read()
