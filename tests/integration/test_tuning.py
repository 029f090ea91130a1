"""SERVER_TUNING in running workers: what each worker installs, seen both in what it reports
about itself and on the wire, and a library version other than the pinned one turning all
tuning off with one warning."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from rooms.server import tuning
from tests.integration.servers import Cluster, http

pytestmark = pytest.mark.integration

StartCluster = Callable[..., Cluster]


def reported_tuning(cluster: Cluster) -> list[list[str]]:
    """Each worker's `server_tuning` from /workers (DEBUG on: every field is shown)."""
    status, _, body = http(f"{cluster.url}/workers")
    assert status == 200
    return sorted(worker["server_tuning"] for worker in body)


def header_names(cluster: Cluster, path: str) -> list[str]:
    """The response header names of a simple GET, in the order they came on the wire."""
    with socket.create_connection(("127.0.0.1", cluster.port), timeout=5) as conn:
        conn.sendall(
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode()
        )
        response = b""
        while chunk := conn.recv(65536):
            response += chunk
    head = response.partition(b"\r\n\r\n")[0].decode("latin-1")
    status_line, *lines = head.split("\r\n")
    assert status_line.startswith("HTTP/1.1 200 "), head
    return [line.split(":", 1)[0].lower() for line in lines]


def answered_by_fast_http(names: list[str]) -> bool:
    """rooms.server.fast_http writes its own headers (Connection, Server) before the
    application's; daphne hands the application's to Twisted, whose response writer puts
    the Server header it adds after them."""
    return names.index("server") < names.index("content-type")


@pytest.mark.own_tuning
def test_with_tuning_on_every_patch_is_active(start_cluster: StartCluster) -> None:
    cluster = start_cluster(2, SERVER_TUNING="on", DEBUG="on")
    assert reported_tuning(cluster) == [sorted(tuning.PATCHES)] * 2
    assert answered_by_fast_http(header_names(cluster, "/workers"))
    assert answered_by_fast_http(header_names(cluster, "/healthz"))


@pytest.mark.own_tuning
def test_with_tuning_off_the_libraries_serve_alone(start_cluster: StartCluster) -> None:
    cluster = start_cluster(2, SERVER_TUNING="off", DEBUG="on")
    assert reported_tuning(cluster) == [[], []]
    names = header_names(cluster, "/workers")
    assert not answered_by_fast_http(names)
    assert names[-1] == "server"
    assert "server tuning off" not in cluster.logs()


@pytest.mark.own_tuning
def test_a_list_installs_only_the_patches_it_names(start_cluster: StartCluster) -> None:
    cluster = start_cluster(1, SERVER_TUNING="tcp_writes,ws_frames", DEBUG="on")
    assert reported_tuning(cluster) == [["tcp_writes", "ws_frames"]]
    assert not answered_by_fast_http(header_names(cluster, "/workers"))


@pytest.mark.own_tuning
def test_another_daphne_version_turns_tuning_off_with_one_warning_per_worker(
    start_cluster: StartCluster, tmp_path: Path
) -> None:
    """The workers find distribution metadata saying daphne 0.0.0 ahead of the real one on
    their path (daphne's code itself is unchanged)."""
    fake = tmp_path / "fake-metadata"
    (fake / "daphne-0.0.0.dist-info").mkdir(parents=True)
    (fake / "daphne-0.0.0.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: daphne\nVersion: 0.0.0\n"
    )
    path = os.pathsep.join(filter(None, [str(fake), os.environ.get("PYTHONPATH")]))
    cluster = start_cluster(2, SERVER_TUNING="on", DEBUG="on", PYTHONPATH=path)
    assert reported_tuning(cluster) == [[], []]
    assert not answered_by_fast_http(header_names(cluster, "/workers"))
    warning = (
        f"server tuning off: daphne 0.0.0 installed, tuning written for {tuning.PINNED['daphne']}"
    )
    assert cluster.logs().count(warning) == 2, cluster.logs()[-3000:]
    assert cluster.logs().count("server tuning off") == 2


def test_workers_follow_the_test_runs_server_tuning(start_cluster: StartCluster) -> None:
    """A cluster started without a SERVER_TUNING of its own inherits the test process's
    (`make test` runs the tests through daphne with it on, then off)."""
    cluster = start_cluster(1, DEBUG="on")
    expected = sorted(tuning.wanted(os.environ.get("SERVER_TUNING", "on")))
    assert reported_tuning(cluster) == [expected]
