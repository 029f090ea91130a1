"""`manage.py reset_db` restores exactly the seed users."""

from __future__ import annotations

import pytest
from django.core.management import call_command

from users.models import PlaygroundUser


@pytest.mark.django_db(transaction=True)
def test_reset_db_restores_renamed_removed_and_extra_users() -> None:
    """Renames are undone, missing seed users return and extra users go."""
    call_command("loaddata", "users", verbosity=0)
    PlaygroundUser.objects.filter(pk=1).update(name="Renamed")
    PlaygroundUser.objects.filter(pk=2).delete()
    PlaygroundUser.objects.create(pk=77, name="Extra")
    call_command("reset_db", verbosity=0)
    assert list(PlaygroundUser.objects.values_list("id", "name"))[:2] == [(1, "John"), (2, "Mary")]
    assert PlaygroundUser.objects.count() == 10


@pytest.mark.django_db(transaction=True)
def test_reset_db_if_empty_keeps_existing_renames() -> None:
    """`--if-empty` seeds an empty table but leaves a populated one alone."""
    call_command("reset_db", "--if-empty", verbosity=0)
    assert PlaygroundUser.objects.count() == 10
    PlaygroundUser.objects.filter(pk=1).update(name="Kept")
    call_command("reset_db", "--if-empty", verbosity=0)
    assert PlaygroundUser.objects.get(pk=1).name == "Kept"
