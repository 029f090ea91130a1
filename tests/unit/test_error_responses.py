"""With DEBUG off, Django's errors answer JSON `{"error": ...}` on the API's paths and
Django's short HTML pages on the admin's and /ui/, never a traceback
(identity_playground/errors.py)."""

from __future__ import annotations

import pytest
from django.test import Client, RequestFactory
from django.urls import get_resolver
from pytest_django.fixtures import Settings


@pytest.fixture
def production(settings: Settings) -> None:
    settings.DEBUG = False
    settings.ALLOWED_HOSTS = ["testserver"]


@pytest.mark.usefixtures("production")
def test_an_unknown_api_path_is_404_json() -> None:
    response = Client().get("/nothing/here")
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"error": "Not found"}


@pytest.mark.usefixtures("production")
def test_a_foreign_host_is_400_json() -> None:
    """Django's Host check (DisallowedHost) goes through handler400."""
    response = Client().get("/nothing", HTTP_HOST="evil.example")
    assert response.status_code == 400
    assert response.json() == {"error": "Bad request"}


@pytest.mark.parametrize(
    ("status", "message"),
    [(400, "Bad request"), (403, "Forbidden"), (404, "Not found"), (500, "Internal server error")],
)
@pytest.mark.usefixtures("production")
def test_each_handler_answers_json_for_the_api_and_html_for_pages(
    status: int, message: str
) -> None:
    handler = get_resolver().resolve_error_handler(status)
    args = () if status == 500 else (Exception("detail that must not leak"),)
    api = handler(RequestFactory().get("/users/1"), *args)
    assert (api.status_code, api["Content-Type"]) == (status, "application/json")
    assert api.content == b'{"error": "%s"}' % message.encode()
    for path in ("/admin/x", "/ui/Maths"):
        page = handler(RequestFactory().get(path), *args)
        assert page.status_code == status
        assert page["Content-Type"].startswith("text/html")
        assert b"detail that must not leak" not in page.content
        assert len(page.content) < 2000  # Django's short page, not a technical one
