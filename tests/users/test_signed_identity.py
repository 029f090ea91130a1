"""Signed mode over HTTP: who may rename whom, where tokens come from, and the accounts
that link Django logins to playground users."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.test import Client
from pytest_django.fixtures import Settings

from users import identity
from users.models import PlaygroundUser

pytestmark = pytest.mark.usefixtures("seeded")


@pytest.fixture(autouse=True)
def signed(settings: Settings) -> None:
    settings.IDENTITY_MODE = "signed"


def put(client: Client, id_user: str, name: str, **extra: str) -> int:
    body = json.dumps({"name": name})
    return client.put(
        f"/users/{id_user}", body, content_type="application/json", **extra
    ).status_code


def name_of(pk: int) -> str:
    return PlaygroundUser.objects.get(pk=pk).name


def linked_account(username: str, id_user: int, *, staff: bool = False) -> User:
    account = User.objects.create_user(username, password="pw-for-tests", is_staff=staff)
    PlaygroundUser.objects.filter(pk=id_user).update(account=account)
    return account


def test_put_needs_that_users_token(client: Client) -> None:
    """No credentials: 401; user 4's token: 403; a junk token: 403; user 3's token: 204.
    Only the last changes the name."""
    response = client.put("/users/3", json.dumps({"name": "X"}), content_type="application/json")
    assert response.status_code == 401
    assert "Bearer" in response.json()["error"]
    assert put(client, "3", "X", HTTP_AUTHORIZATION=f"Bearer {identity.make_token('4')}") == 403
    assert put(client, "3", "X", HTTP_AUTHORIZATION="Bearer junk") == 403
    assert put(client, "3", "X", HTTP_AUTHORIZATION="Basic dXNlcjpwdw==") == 401
    assert name_of(3) == "Mike"
    assert (
        put(client, "3", "Michael", HTTP_AUTHORIZATION=f"Bearer {identity.make_token('3')}") == 204
    )
    assert name_of(3) == "Michael"


def test_reads_stay_public(client: Client) -> None:
    """GET /users and /users/<id> need no credentials in signed mode."""
    assert client.get("/users").status_code == 200
    assert client.get("/users/3").json() == {"id_user": "3", "name": "Mike"}


def test_a_session_renames_its_own_user_only_and_staff_anyone(client: Client) -> None:
    """A login linked to user 3 renames user 3, not user 4; a staff login renames anyone."""
    client.force_login(linked_account("mike", 3))
    assert put(client, "4", "X") == 403
    assert put(client, "3", "Mikey") == 204
    staff = Client()
    staff.force_login(User.objects.create_user("boss", is_staff=True))
    assert put(staff, "4", "Francis") == 204
    assert (name_of(3), name_of(4)) == ("Mikey", "Francis")


def test_open_mode_renames_without_credentials(client: Client, settings: Settings) -> None:
    """IDENTITY_MODE=open keeps the playground's anyone-renames-anyone."""
    settings.IDENTITY_MODE = "open"
    assert put(client, "3", "Anyone") == 204


def test_auth_token_gives_the_sessions_user_a_token() -> None:
    """POST /auth/token with a linked login's session (and the CSRF token) returns that
    user's token; without CSRF 403, not logged in 401, not linked 403, GET 405."""
    browser = Client(enforce_csrf_checks=True)
    assert browser.post("/auth/token").status_code == 403  # no CSRF token
    browser.get("/accounts/login/")  # sets the CSRF cookie
    csrf = {"HTTP_X_CSRFTOKEN": browser.cookies["csrftoken"].value}
    response = browser.post("/auth/token", **csrf)
    assert (response.status_code, response.json()) == (401, {"error": "Log in first"})
    browser.force_login(User.objects.create_user("nobody"))
    csrf = {"HTTP_X_CSRFTOKEN": browser.cookies["csrftoken"].value}
    assert browser.post("/auth/token", **csrf).status_code == 403
    browser.force_login(linked_account("mary", 2))
    response = browser.post("/auth/token", **csrf)
    assert response.status_code == 200
    assert identity.verify_token(response.json()["token"]) == "2"
    assert browser.get("/auth/token").status_code == 405


def test_identity_token_command_prints_one_token_on_its_last_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`manage.py identity_token 3` prints a token of user 3; an unknown user is an error."""
    call_command("identity_token", "3")
    lines = capsys.readouterr().out.strip().splitlines()
    assert identity.verify_token(lines[-1]) == "3"
    with pytest.raises(CommandError, match="Unknown id_user: 99"):
        call_command("identity_token", "99")


def test_demo_accounts_link_a_login_to_every_user() -> None:
    """`manage.py demo_accounts --password` makes user1..user10, each linked to its user;
    running it again changes nothing but the password."""
    call_command("demo_accounts", password="demo-pass-1")
    call_command("demo_accounts", password="demo-pass-2")
    links = dict(PlaygroundUser.objects.values_list("id", "account__username"))
    assert links == {i: f"user{i}" for i in range(1, 11)}
    assert User.objects.get(username="user3").check_password("demo-pass-2")
    assert User.objects.count() == 10


def test_room_page_sends_a_visitor_to_log_in_and_serves_the_logged_in_user(
    client: Client,
) -> None:
    """Signed mode: /ui/<room> redirects to the login page, then shows the login's user
    with its token, whatever ?id_user claims."""
    response = client.get("/ui/Maths?id_user=4")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=")
    client.force_login(linked_account("mike", 3))
    page = client.get("/ui/Maths?id_user=4")
    assert page.status_code == 200
    config = page.context["config"]
    assert config["id_user"] == "3"
    assert identity.verify_token(config["token"]) == "3"
    client.force_login(User.objects.create_user("nobody"))
    assert client.get("/ui/Maths").status_code == 403


def test_the_signed_landing_page_offers_login_not_users(client: Client) -> None:
    """No user to pick or "open as" link: a room page is the login's user; the form opens
    the room without an id_user, and a login link comes back to the landing page."""
    page = client.get("/ui/").content.decode()
    assert "data-open-as" not in page and 'id="pick-user"' not in page
    assert 'href="/accounts/login/?next=%2Fui%2F"' in page
    response = client.get("/ui/", {"room": "Maths", "id_user": "2"})
    assert (response.status_code, response["Location"]) == (302, "/ui/Maths")


def test_the_signed_room_page_says_whose_identity_it_uses(client: Client) -> None:
    """Logged in as an account linked to user 3, `?id_user=2` gives user 3's page, and the
    page says so instead of silently."""
    client.force_login(linked_account("mike", 3))
    page = text_of(client.get("/ui/Maths", {"id_user": "2"}))
    assert "Logged in as <strong>mike</strong>: this page is Mike (id_user 3), not id_user 2" in (
        page
    )
    plain = text_of(client.get("/ui/Maths"))
    assert "this page is Mike (id_user 3)." in plain and "not id_user" not in plain


def text_of(response: Any) -> str:
    """The page with its whitespace runs made single spaces."""
    return " ".join(response.content.decode().split())


def test_the_open_landing_page_offers_every_user(client: Client, settings: Settings) -> None:
    settings.IDENTITY_MODE = "open"
    page = client.get("/ui/").content.decode()
    assert page.count("data-open-as") == 12  # the two "as" buttons and ten rows
    assert 'id="pick-user"' in page and "login" not in page
