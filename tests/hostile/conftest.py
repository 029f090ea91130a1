"""Hostile clients against real clusters: each attack is bounded in count and time, sent
only to the loopback address of a cluster the test started."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.hostile.clusters import SharedClusters
from tests.integration.conftest import module_cluster, private_redis, redis_server, start_cluster
from tests.integration.servers import RedisServer

__all__ = ["module_cluster", "private_redis", "redis_server", "start_cluster"]

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def own_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A Redis of the requesting module alone: its byte counters and channels see only that
    module's cluster."""
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def hostile_clusters(
    redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SharedClusters]:
    """The clusters the modules whose settings agree share (tests/hostile/clusters.py)."""
    clusters = SharedClusters(redis_server, tmp_path_factory.mktemp("shared"))
    yield clusters
    clusters.stop()
