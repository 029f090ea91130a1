"""Fixtures shared by every test layer, and the strict mode that makes any skip a failure."""

from __future__ import annotations

import os

import pytest
from django.core.management import call_command

from rooms.cluster.known_users import KNOWN_USERS


@pytest.fixture(autouse=True)
def no_user_known_yet(monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker's cache of existing users outlives a test's database: start each empty."""
    monkeypatch.setattr(KNOWN_USERS, "_seen", {})


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
