"""Fixtures shared by every test layer."""

from __future__ import annotations

import pytest
from django.core.management import call_command


@pytest.fixture
def seeded(db: None) -> None:
    """The ten seed users, as `loaddata users` installs them."""
    call_command("loaddata", "users", verbosity=0)
