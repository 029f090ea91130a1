"""Fixtures shared by every test layer."""

from __future__ import annotations

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
