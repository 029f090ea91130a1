"""The admin's cluster view of users: "online now", the reset action, ids given for free."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest
from django.contrib.auth.models import User
from django.test import Client
from pytest_django.fixtures import Settings

from rooms import runtime
from users import services
from users.models import PlaygroundUser

pytestmark = pytest.mark.usefixtures("seeded")
CHANGELIST = "/admin/users/playgrounduser/"


@pytest.fixture
def staff(db: None) -> Client:
    client = Client()
    client.force_login(User.objects.create_superuser("admin", "a@example.com", "pw-for-tests"))
    return client


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A port nothing listens on (bound, never listening: connections are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def online_cells(page: str) -> list[str]:
    marker = 'class="field-online_now">'
    return [part.split("<", 1)[0] for part in page.split(marker)[1:]]


def test_online_now_shows_the_clusters_counts(staff: Client) -> None:
    """One count per user from the cluster's sockets per user; 0 for users not connected."""
    services.provide_online_counts(lambda: {"1": 2, "3": 1})
    try:
        page = staff.get(CHANGELIST).content.decode()
    finally:
        services.provide_online_counts(runtime.sockets_per_user)
    assert "Online now" in page
    assert online_cells(page) == ["2", "0", "1", "0", "0", "0", "0", "0", "0", "0"]


def test_online_now_is_a_question_mark_when_redis_is_down(
    staff: Client, settings: Settings, closed_port: int
) -> None:
    """Redis unreachable: the page still answers, at once, with "?" in the column."""
    settings.REDIS_URLS = [f"redis://127.0.0.1:{closed_port}/0"]
    started = time.monotonic()
    page = staff.get(CHANGELIST).content.decode()
    assert time.monotonic() - started < 3.0
    assert online_cells(page) == ["?"] * 10


def test_add_form_offers_the_next_free_id(staff: Client) -> None:
    """A new user's id is filled in (one past the largest); saving it as offered works."""
    page = staff.get(CHANGELIST + "add/")
    assert page.context["adminform"].form.initial["id"] == 11
    response = staff.post(CHANGELIST + "add/", {"id": "11", "name": "Eleven"})
    assert response.status_code == 302
    assert PlaygroundUser.objects.get(pk=11).name == "Eleven"


def test_reset_action_restores_the_ten_seed_users(staff: Client) -> None:
    """The action puts back exactly the seed users, renames and additions undone."""
    PlaygroundUser.objects.filter(pk=3).update(name="Renamed")
    PlaygroundUser.objects.create(id=42, name="Extra")
    response = staff.post(
        CHANGELIST, {"action": "reset_to_seed_users", "_selected_action": ["1"]}, follow=True
    )
    assert response.status_code == 200
    assert "Reset done: 10 users." in response.content.decode()
    assert list(PlaygroundUser.objects.values_list("id", flat=True)) == list(range(1, 11))
    assert PlaygroundUser.objects.get(pk=3).name == "Mike"
