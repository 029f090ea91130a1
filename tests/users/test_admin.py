"""The Django admin lists, searches and edits playground users."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client

from users.models import PlaygroundUser

pytestmark = pytest.mark.usefixtures("seeded")


@pytest.fixture
def admin_client_logged_in(db: None) -> Client:
    User.objects.create_superuser("admin", "admin@example.com", "pw-for-tests")
    client = Client()
    client.force_login(User.objects.get(username="admin"))
    return client


def test_changelist_shows_id_and_name(admin_client_logged_in: Client) -> None:
    """The list page shows every user."""
    page = admin_client_logged_in.get("/admin/users/playgrounduser/").content.decode()
    for name in ("John", "Victoria"):
        assert name in page


def test_search_by_name(admin_client_logged_in: Client) -> None:
    """Searching narrows the list to matching names."""
    page = admin_client_logged_in.get("/admin/users/playgrounduser/?q=steph").content.decode()
    assert "Stephanie" in page
    assert "Victoria" not in page


def test_change_form_edits_the_name(admin_client_logged_in: Client) -> None:
    """Saving the change form renames the user."""
    url = "/admin/users/playgrounduser/4/change/"
    assert admin_client_logged_in.get(url).status_code == 200
    response = admin_client_logged_in.post(url, {"id": "4", "name": "Francis"})
    assert response.status_code == 302
    assert PlaygroundUser.objects.get(pk=4).name == "Francis"


def test_anonymous_is_sent_to_login() -> None:
    """The admin is not open to anonymous visitors."""
    response = Client().get("/admin/users/playgrounduser/")
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]
