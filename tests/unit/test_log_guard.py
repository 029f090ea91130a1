"""The log guard of tests/conftest.py: what a cluster's log gained while a test ran."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import log_sizes, unexpected_log_lines
from tests.integration.servers import STARTED_CLUSTERS, Cluster


@pytest.fixture
def clusters() -> Iterator[list[Cluster]]:
    """STARTED_CLUSTERS of this test alone (the real list is restored afterwards)."""
    saved = list(STARTED_CLUSTERS)
    STARTED_CLUSTERS.clear()
    yield STARTED_CLUSTERS
    STARTED_CLUSTERS[:] = saved


def logging_cluster(workdir: Path, running: bool) -> Cluster:
    """A Cluster with a log file and, when `running`, a live process standing for runcluster."""
    cluster = Cluster(workers=1, redis_url="", workdir=workdir, port=1)
    cluster.log_path.write_text("[w0 1] INFO rooms: started\n")
    if running:
        cluster.process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    return cluster


def append(cluster: Cluster, line: str) -> None:
    with cluster.log_path.open("a") as log:
        log.write(line + "\n")


def test_only_what_a_running_cluster_logged_during_the_test_counts(
    clusters: list[Cluster], tmp_path: Path
) -> None:
    cluster = logging_cluster(tmp_path, running=True)
    assert cluster.process is not None
    try:
        append(cluster, "[w0 1] ERROR rooms: from an earlier test")
        clusters.append(cluster)
        before = log_sizes()
        append(cluster, "[w0 1] ERROR rooms.consumer: boom")
        append(cluster, "[w0 1] WARNING rooms: fine")
        assert unexpected_log_lines(before, []) == ["[w0 1] ERROR rooms.consumer: boom"]
        assert unexpected_log_lines(before, [re.compile("boom")]) == []
        assert clusters == [cluster]  # still running: read again by the next test
    finally:
        cluster.process.kill()
        cluster.process.wait()


def test_a_cluster_started_and_stopped_in_the_test_is_read_whole_then_forgotten(
    clusters: list[Cluster], tmp_path: Path
) -> None:
    before = log_sizes()
    cluster = logging_cluster(tmp_path, running=False)  # stopped: its process is gone
    append(cluster, "Traceback (most recent call last):")
    clusters.append(cluster)
    assert unexpected_log_lines(before, []) == ["Traceback (most recent call last):"]
    assert clusters == []
    assert unexpected_log_lines(log_sizes(), []) == []
