"""The /users JSON API of the contract: successes, and bad input that changes nothing."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from tests.seed import SEED_NAMES as SEED
from users.models import PlaygroundUser

pytestmark = pytest.mark.usefixtures("seeded")


def put(client: Client, id_user: str, body: object | str, **extra: str) -> tuple[int, dict]:
    raw = body if isinstance(body, str) else json.dumps(body)
    response = client.put(f"/users/{id_user}", raw, content_type="application/json", **extra)
    data = json.loads(response.content) if response.content else {}
    return response.status_code, data


def name_of(pk: int) -> str:
    return PlaygroundUser.objects.get(pk=pk).name


def test_fixture_loads_exactly_the_ten_seed_users() -> None:
    """`loaddata users` gives users 1..10 with the seed names, nothing else."""
    assert list(PlaygroundUser.objects.order_by("id").values_list("id", "name")) == list(
        enumerate(SEED, start=1)
    )


def test_list_users_ordered_with_string_ids(client: Client) -> None:
    """GET /users lists every user by id, id_user as a string."""
    response = client.get("/users")
    assert response.status_code == 200
    assert response.json() == [{"id_user": str(i), "name": n} for i, n in enumerate(SEED, 1)]


def test_get_one_user(client: Client) -> None:
    """GET /users/<id> returns that user."""
    assert client.get("/users/3").json() == {"id_user": "3", "name": "Mike"}


@pytest.mark.parametrize("id_user", ["0", "11", "abc", "01", "-1", "1.0", "99999999999"])
def test_unknown_user_is_404_json(client: Client, id_user: str) -> None:
    """Ids that name nobody answer 404 with the contract's error message."""
    response = client.get(f"/users/{id_user}")
    assert response.status_code == 404
    assert response.json() == {"error": "Cannot find user with such id"}


@pytest.mark.parametrize("method", ["put", "patch"])
def test_rename_stores_stripped_name(client: Client, method: str) -> None:
    """PUT and PATCH rename with 204; surrounding whitespace is dropped, Unicode kept."""
    response = getattr(client, method)(
        "/users/2", json.dumps({"name": "  Zoë 東京 "}), content_type="application/json"
    )
    assert response.status_code == 204
    assert name_of(2) == "Zoë 東京"


def test_name_of_255_code_points_is_accepted(client: Client) -> None:
    """The limit counts characters (code points), not bytes."""
    assert put(client, "1", {"name": "é" * 255})[0] == 204
    assert name_of(1) == "é" * 255


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("{not json", "Invalid JSON body"),
        ("", "Invalid JSON body"),
        ("[1, 2]", "Body must be a JSON object"),
        ('"John"', "Body must be a JSON object"),
        ("{}", 'Field "name" is required'),
        ('{"name": 5}', 'Field "name" must be a string'),
        ('{"name": null}', 'Field "name" must be a string'),
        ('{"name": ""}', 'Field "name" must not be empty'),
        ('{"name": " \\t\\n "}', 'Field "name" must not be empty'),
        (json.dumps({"name": "x" * 256}), 'Field "name" must be at most 255 characters'),
        ('{"name": "Ok", "admin": true}', "Unknown field(s): admin"),
    ],
)
def test_bad_bodies_are_400_and_change_nothing(client: Client, body: str, message: str) -> None:
    """Each bad input says what is wrong and leaves the stored name alone."""
    status, data = put(client, "1", body)
    assert (status, data) == (400, {"error": message})
    assert name_of(1) == "John"


def test_oversized_body_is_413_and_changes_nothing(client: Client) -> None:
    """A body over 64 KiB is refused before it is parsed."""
    status, data = put(client, "1", {"name": "x" * (70 * 1024)})
    assert status == 413
    assert "error" in data
    assert name_of(1) == "John"


def test_rename_of_unknown_user_is_404_even_with_bad_body(client: Client) -> None:
    """Existence is checked first, as the contract says."""
    assert put(client, "42", "{bad")[0] == 404
    assert put(client, "abc", {"name": "X"}) == (404, {"error": "Cannot find user with such id"})


@pytest.mark.parametrize(
    ("path", "method"),
    [("/users", "post"), ("/users/1", "delete"), ("/users/1", "post"), ("/users", "put")],
)
def test_other_methods_are_405_json(client: Client, path: str, method: str) -> None:
    """Methods the API does not offer answer 405 with a JSON error."""
    response = getattr(client, method)(path)
    assert response.status_code == 405
    assert "error" in response.json()


def test_browser_put_without_csrf_token_is_refused() -> None:
    """A request carrying Origin (every browser PUT does) needs the page's CSRF token."""
    browser = Client(enforce_csrf_checks=True)
    status, data = put(browser, "1", {"name": "Mallory"}, HTTP_ORIGIN="http://evil.example")
    assert status == 403
    assert "CSRF" in data["error"]
    assert name_of(1) == "John"


def test_browser_put_with_csrf_token_is_accepted() -> None:
    """The token the page holds, sent back in X-CSRFToken with its cookie, passes."""
    browser = Client(enforce_csrf_checks=True)
    token = "a" * 32
    browser.cookies["csrftoken"] = token
    status, _ = put(
        browser, "1", {"name": "Johnny"}, HTTP_ORIGIN="http://testserver", HTTP_X_CSRFTOKEN=token
    )
    assert status == 204
    assert name_of(1) == "Johnny"


def test_script_put_without_origin_needs_no_token() -> None:
    """A plain `curl -X PUT` (no Origin, no cookie) keeps working."""
    status, _ = put(Client(enforce_csrf_checks=True), "1", {"name": "Curl"})
    assert status == 204


ENDPOINTS = {"/users": "GET, HEAD", "/users/1": "GET, HEAD, PUT, PATCH"}
NOT_SERVED = [
    (path, method)
    for path, allow in ENDPOINTS.items()
    for method in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE")
    if method not in allow.split(", ")
]


@pytest.mark.parametrize("origin", [None, "http://testserver"], ids=["script", "browser"])
@pytest.mark.parametrize(("path", "method"), NOT_SERVED)
def test_every_method_not_served_is_405_json_with_allow(
    path: str, method: str, origin: str | None
) -> None:
    """With CSRF enforced as on a real server, and with or without a browser's Origin, every
    method an endpoint does not serve answers 405 JSON naming the methods it does serve in
    Allow (RFC 9110 section 15.5.6), never Django's HTML CSRF page."""
    client = Client(enforce_csrf_checks=True)
    extra = {"HTTP_ORIGIN": origin} if origin else {}
    response = client.generic(method, path, **extra)
    assert response.status_code == 405
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"error": "Method not allowed"}
    assert response["Allow"] == ENDPOINTS[path]
    assert name_of(1) == "John"
