"""WORKERS_TOKEN and METRICS_TOKEN: who may read /workers' details and /metrics besides
DEBUG and staff sessions."""

from __future__ import annotations

import base64

from django.test import RequestFactory
from pytest_django.fixtures import Settings

from rooms.http.views import holds_token

TOKEN = "t" * 40


def request_with(authorization: str | None) -> object:
    headers = {} if authorization is None else {"HTTP_AUTHORIZATION": authorization}
    return RequestFactory().get("/workers", **headers)


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_bearer_or_basic_password_matches(settings: Settings) -> None:
    settings.WORKERS_TOKEN = TOKEN
    for authorization in (f"Bearer {TOKEN}", f"bearer  {TOKEN}", basic("ops", TOKEN)):
        assert holds_token(request_with(authorization), settings.WORKERS_TOKEN), authorization  # type: ignore[arg-type]
    for authorization in (None, "", "Bearer", f"Bearer {TOKEN}x", basic(TOKEN, "x"),
                          "Basic ###", basic("ops", "é" + TOKEN)):  # fmt: skip
        assert not holds_token(request_with(authorization), settings.WORKERS_TOKEN), authorization  # type: ignore[arg-type]


def test_no_token_configured_lets_nobody_in(settings: Settings) -> None:
    settings.WORKERS_TOKEN = ""
    for authorization in ("Bearer ", basic("ops", ""), "Bearer x"):
        assert not holds_token(request_with(authorization), settings.WORKERS_TOKEN)  # type: ignore[arg-type]
