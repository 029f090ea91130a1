"""Fixtures for tests against real redis-server and daphne processes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.integration.servers import LAYER_BACKENDS, Cluster, RedisServer

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One private Redis for the session; clusters keep apart by channel prefix."""
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A Redis of this test alone, which the test may stop and start."""
    server = RedisServer(tmp_path)
    yield server
    server.stop()


@pytest.fixture
def start_cluster(redis_server: RedisServer, tmp_path: Path) -> Iterator[Callable[..., Cluster]]:
    """Start runcluster clusters; all are stopped after the test (logs shown on failure)."""
    started: list[Cluster] = []

    def start(workers: int = 1, redis: RedisServer | None = None, **env: str) -> Cluster:
        cluster = Cluster(
            workers=workers, redis_url=(redis or redis_server).url, workdir=tmp_path, extra_env=env
        )
        started.append(cluster)
        return cluster.start()

    yield start
    for cluster in started:
        cluster.stop()
        print(f"---- cluster :{cluster.port} log ----\n{cluster.logs()[-4000:]}")


def module_cluster(
    workers: int,
    redis_server: RedisServer,
    tmp_path_factory: pytest.TempPathFactory,
    **env: str,
) -> Iterator[Cluster]:
    """A cluster for the tests of one module; its log is printed after them."""
    cluster = Cluster(
        workers=workers,
        redis_url=redis_server.url,
        workdir=tmp_path_factory.mktemp("cluster"),
        extra_env=env,
    ).start()
    yield cluster
    cluster.stop()
    print(f"---- cluster :{cluster.port} log ----\n{cluster.logs()[-4000:]}")


@pytest.fixture(scope="module")
def shared_cluster(session_cluster: Cluster) -> Iterator[Cluster]:
    """A 2-worker cluster shared by the tests of one module that do not break it: the
    session's (`session_cluster`, tests/conftest.py), with both workers live when the module
    starts and exactly the seed users again when it ends (a module that renames leaves
    nothing to the next)."""
    session_cluster.wait_for_workers(2)
    yield session_cluster
    session_cluster.restore_seed_users()


@pytest.fixture(scope="module", params=list(LAYER_BACKENDS))
def cluster4(
    request: pytest.FixtureRequest,
    redis_server: RedisServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Cluster]:
    """A 4-worker cluster shared by the tests of one module that do not break it, on each
    channel layer the cluster runs on (the contract holds on all of them)."""
    backend = LAYER_BACKENDS[request.param]
    yield from module_cluster(4, redis_server, tmp_path_factory, CHANNEL_LAYER_BACKEND=backend)
