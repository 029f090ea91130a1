"""The 2-worker clusters hostile modules share: a cluster's start and stop cost seconds, so
the modules whose settings agree attack one cluster per kind and tuning, started on first
use and stopped at the end of the session (the `hostile_clusters` fixture, conftest.py).

Each module gets the cluster with both workers live and hands it on with exactly the seed
users (as `shared_cluster`, tests/integration/conftest.py). What an attack leaves behind
is closed by the module itself: every socket is closed by the test that opened it, the
per-address budgets these modules meet are far above what they all spend together
(SOCKETIO_CONNECT_REFUSALS_PER_MINUTE 600, HTTP_RENAMES_PER_MINUTE_PER_ADDRESS 60), and
`Unharmed` (harm.py) measures each worker against itself at the start of its watch. The
modules that lower a per-address limit, kill or reconfigure workers, or count a Redis's
traffic keep a cluster of their own.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from django.conf import settings

from tests.hostile.harm import production_env
from tests.integration.servers import Cluster, RedisServer

HEAD_DEADLINE_S = 1.0  # HTTP_HEAD_TIMEOUT_S (test_slow_clients)
BODY_DEADLINE_S = 2.0  # HTTP_BODY_TIMEOUT_S (test_http_edge)
MAX_PIPELINED = 20  # HTTP_MAX_PIPELINED_REQUESTS (test_http_edge)

Kind = Literal["development", "production"]
# Development settings, or production ones (DEBUG off, tests/hostile/harm.py); the limits
# one module lowers are far from what the others' well-behaved clients come near.
SETTINGS: dict[Kind, dict[str, str]] = {
    "development": {"HTTP_HEAD_TIMEOUT_S": str(HEAD_DEADLINE_S)},
    "production": production_env(
        HTTP_BODY_TIMEOUT_S=str(BODY_DEADLINE_S),
        HTTP_MAX_PIPELINED_REQUESTS=str(MAX_PIPELINED),
    ),
}


class SharedClusters:
    """One cluster per (kind, SERVER_TUNING), each started when a module first asks."""

    def __init__(self, redis: RedisServer, workdir: Path) -> None:
        self._redis = redis
        self._workdir = workdir
        self._started: dict[tuple[Kind, str], Cluster] = {}

    def for_module(self, kind: Kind, tuning: str | None = None) -> Iterator[Cluster]:
        """The cluster of `kind` and `tuning` (the test process's SERVER_TUNING if None),
        for the tests of one module."""
        tuning = tuning or settings.SERVER_TUNING
        cluster = self._started.get((kind, tuning))
        if cluster is None:
            cluster = Cluster(
                workers=2,
                redis_url=self._redis.url,
                workdir=self._workdir / f"{kind}-{tuning}",
                extra_env={**SETTINGS[kind], "SERVER_TUNING": tuning},
            )
            cluster.workdir.mkdir()
            self._started[kind, tuning] = cluster.start()
        else:
            cluster.wait_for_workers(2)
        yield cluster
        cluster.restore_seed_users()

    def stop(self) -> None:
        for cluster in self._started.values():
            cluster.stop()
            print(f"---- cluster :{cluster.port} log ----\n{cluster.logs()[-4000:]}")
