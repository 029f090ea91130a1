"""Hostile clients against real clusters: each attack is bounded in count and time, sent
only to the loopback address of a cluster the test started."""

from __future__ import annotations

import pytest

from tests.integration.conftest import module_cluster, private_redis, redis_server, start_cluster

__all__ = ["module_cluster", "private_redis", "redis_server", "start_cluster"]

pytestmark = pytest.mark.integration
