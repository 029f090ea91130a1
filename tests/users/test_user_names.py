"""users.services.user_names: the names a roster with ?hydrate=1 shows, in one query."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.seed import SEED_NAMES as SEED
from users.models import PlaygroundUser
from users.services import user_names

pytestmark = pytest.mark.usefixtures("seeded")


def test_names_of_several_users_in_one_query() -> None:
    with CaptureQueriesContext(connection) as queries:
        names = user_names(["3", "1", "10", "3"])
    assert names == {"1": SEED[0], "3": SEED[2], "10": SEED[9]}
    assert len(queries) == 1


def test_a_rename_is_read_at_once() -> None:
    PlaygroundUser.objects.filter(pk=2).update(name="Renamed")
    assert user_names(["2"]) == {"2": "Renamed"}


@pytest.mark.parametrize("id_user", ["42", "0", "03", "abc", "", "9999999999", "99999999999"])
def test_ids_nobody_has_are_left_out(id_user: str) -> None:
    assert user_names([id_user, "4"]) == {"4": SEED[3]}


def test_no_ids_no_query() -> None:
    with CaptureQueriesContext(connection) as queries:
        assert user_names([]) == {}
        assert user_names(["nobody"]) == {}
    assert len(queries) == 0
