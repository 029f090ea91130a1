"""Fixtures for tests across three hosts (network namespaces on this machine).

Needs root (CAP_NET_ADMIN) and `ip netns`; without them every test here is skipped with
the reason. Whatever a test leaves behind (processes, namespaces, the bridge) is removed by
the fixtures' finalizers, and leftovers of an earlier run that died are removed at start.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.multihost import netns
from tests.multihost.netns import Hosts

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def netns_ready() -> Iterator[None]:
    reason = netns.unavailable_reason()
    if reason is not None:
        pytest.skip(f"multihost tests need network namespaces on this machine: {reason}")
    removed = netns.cleanup()  # of runs that died (their pid is gone)
    if removed:
        print(f"removed leftovers of earlier runs: {removed}")
    yield
    netns.cleanup(owner=os.getpid())  # anything a finalizer failed to remove


def _close(hosts: Hosts) -> None:
    print(hosts.logs())
    hosts.close()


@pytest.fixture(scope="module")
def hosts(netns_ready: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hosts]:
    """Hosts A, B, C shared by the tests of a module that do not break them."""
    started = Hosts(tmp_path_factory.mktemp("hosts"))
    yield started
    _close(started)


@pytest.fixture
def make_hosts(netns_ready: None, tmp_path: Path) -> Iterator[Callable[..., Hosts]]:
    """Hosts of one test alone, which it may partition or kill; removed afterwards."""
    made: list[Hosts] = []

    def make(redis_ports: tuple[int, ...] = (netns.REDIS_PORT,), **env: str) -> Hosts:
        workdir = tmp_path / f"hosts{len(made)}"
        workdir.mkdir()
        started = Hosts(workdir, redis_ports, env)
        made.append(started)
        return started

    yield make
    for started in made:
        _close(started)
