"""Fixtures shared by every test layer, and the strict mode that makes any skip a failure."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.core.management import call_command
from hypothesis import settings as hypothesis_settings

from rooms.cluster.known_users import KNOWN_USERS
from tests.integration.conftest import module_cluster
from tests.integration.servers import STARTED_CLUSTERS, Cluster, RedisServer
from users import ratelimit

# Hypothesis fails an example that takes over 200 ms by default: on a 2-core machine shared
# with running clusters that measures the machine, not the codec. Pytest's own per-test
# timeout still bounds a test that hangs.
hypothesis_settings.register_profile("suite", deadline=None)
hypothesis_settings.load_profile("suite")


@pytest.fixture(autouse=True)
def no_user_known_yet(monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker's cache of existing users outlives a test's database: start each empty."""
    monkeypatch.setattr(KNOWN_USERS, "_seen", {})
    monkeypatch.setattr(KNOWN_USERS, "_missing", {})


@pytest.fixture(autouse=True)
def no_rename_counted_yet(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test client is 127.0.0.1: each test starts with a fresh per-address budget."""
    monkeypatch.setattr(ratelimit, "RENAMES", ratelimit.AddressRateLimit())


# What a cluster log must never gain: a traceback, or a line logged at ERROR or above
# (runcluster's format is "[wN pid] LEVEL logger: message").
UNEXPECTED = re.compile(r"^.*(Traceback \(most recent call last\)|\b(ERROR|CRITICAL)\b).*$", re.M)


def log_sizes() -> dict[int, int]:
    """How far each running cluster has logged; a cluster that has exited is forgotten."""
    STARTED_CLUSTERS[:] = [c for c in STARTED_CLUSTERS if not c.exited()]
    return {id(c): c.log_size() for c in STARTED_CLUSTERS}


def unexpected_log_lines(before: dict[int, int], expected: list[re.Pattern[str]]) -> list[str]:
    """The lines every cluster logged since `before` (all of a cluster started since) that
    UNEXPECTED matches and no `expected` pattern does. Only the new bytes are read; a
    cluster that has exited is read this last time and then forgotten."""
    found = []
    for cluster in list(STARTED_CLUSTERS):
        gained = cluster.logs_since(before.get(id(cluster), 0))
        if cluster.exited():
            STARTED_CLUSTERS.remove(cluster)
        for line in UNEXPECTED.finditer(gained):
            if not any(p.search(line.group(0)) for p in expected):
                found.append(line.group(0))
    return found


@pytest.fixture(autouse=True)
def cluster_logs_stay_clean(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fails a test whose clusters logged a traceback or an ERROR line while it ran, unless
    the test names what it expects with `@pytest.mark.log_errors(r"regex", ...)`."""
    before = log_sizes()
    yield
    expected = [
        re.compile(pattern)
        for marker in request.node.iter_markers("log_errors")
        for pattern in marker.args
    ]
    found = unexpected_log_lines(before, expected)
    assert not found, "cluster log gained unexpected errors:\n" + "\n".join(found[:20])


# The fixtures that start daphne workers with the test process's SERVER_TUNING: a test that
# uses one is marked `daphne`, and the tuning-off pass (scripts/test-passes) runs it again.
CLUSTER_FIXTURES = frozenset({"start_cluster", "shared_cluster", "cluster4"})
INTEGRATION = Path(__file__).resolve().parent / "integration"
# Every hostile test bounds the latency of a cluster under attack (tests/hostile/harm.py):
# beside a second test process those bounds measure the neighbour, so they run `alone`.
HOSTILE = Path(__file__).resolve().parent / "hostile"
CLUSTER_STARTS_AT_SETUP = pytest.StashKey[int]()


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Marks `daphne` each test that uses a cluster fixture and does not set the tuning
    itself (`own_tuning`), and `alone` each hostile test; before `-m` selects (tryfirst)."""
    for item in items:
        if item.path.is_relative_to(HOSTILE):
            item.add_marker(pytest.mark.alone)
        uses_cluster = CLUSTER_FIXTURES & set(getattr(item, "fixturenames", ()))
        if uses_cluster and item.get_closest_marker("own_tuning") is None:
            item.add_marker(pytest.mark.daphne)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    item.stash[CLUSTER_STARTS_AT_SETUP] = Cluster.starts


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Iterator[pytest.TestReport]:
    """Fails an integration test that started a cluster (its own, or its module's) without
    either mark: the tuning-off pass would leave it out in silence."""
    report: pytest.TestReport = yield
    unmarked = not any(item.get_closest_marker(m) for m in ("daphne", "own_tuning"))
    if (
        report.when == "teardown"
        and report.passed
        and unmarked
        and item.path.is_relative_to(INTEGRATION)
        and Cluster.starts > item.stash.get(CLUSTER_STARTS_AT_SETUP, Cluster.starts)
    ):
        report.outcome = "failed"
        report.longrepr = (
            f"{item.nodeid} started a cluster but is marked neither `daphne` nor `own_tuning`"
            " (pyproject.toml's markers): mark it so the tuning-off pass knows it"
        )
    return report


@pytest.fixture(scope="session")
def session_cluster(
    redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    """The 2-worker cluster behind `shared_cluster` (tests/integration/conftest.py), started
    once per test process. Defined here so that every conftest that imports `shared_cluster`
    and `redis_server` has it; `redis_server` is the requesting test's."""
    yield from module_cluster(2, redis_server, tmp_path_factory)


@pytest.fixture
def seeded(db: None) -> None:
    """The ten seed users, as `loaddata users` installs them."""
    call_command("loaddata", "users", verbosity=0)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """With STRICT_SKIPS=1 (set by .ci/run) a skipped test fails the run: CI must not go
    green because PostgreSQL, network namespaces, Chromium or Node were missing."""
    if os.environ.get("STRICT_SKIPS") != "1":
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter is not None else []
    if skipped:
        reporter.write_line(
            f"STRICT_SKIPS=1: {len(skipped)} skipped test(s) fail this run; "
            "install what their reasons name (see the skip summary above)",
            red=True,
        )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
