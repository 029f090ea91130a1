"""A user's name is text a page can show: control characters (NUL included) and lone
surrogates are refused with a 400 JSON error on every database, and nothing changes."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.test import Client

from users.models import PlaygroundUser

pytestmark = pytest.mark.usefixtures("seeded")


@pytest.mark.parametrize(
    "raw_name",
    ['"\\ud800"', '"Jo\\udfffhn"', '"Jo\\u0000hn"', '"Jo\\nhn"', '"a\\u0085b"', '"a\\u007f"'],
    ids=["lone high surrogate", "lone low surrogate", "NUL", "newline", "NEL", "DEL"],
)
def test_a_name_that_is_not_plain_text_is_refused(client: Client, raw_name: str) -> None:
    response = client.put("/users/1", f'{{"name": {raw_name}}}', content_type="application/json")
    assert response.status_code == 400
    assert "control characters or invalid Unicode" in response.json()["error"]
    assert PlaygroundUser.objects.get(pk=1).name == "John"


def test_a_name_with_a_surrogate_pair_is_one_character_and_fine(client: Client) -> None:
    response = client.put(
        "/users/1", '{"name": "Jo \\ud83d\\ude00"}', content_type="application/json"
    )
    assert response.status_code == 204
    assert PlaygroundUser.objects.get(pk=1).name == "Jo \U0001f600"


def test_the_model_refuses_it_too_so_the_admin_does() -> None:
    user = PlaygroundUser.objects.get(pk=2)
    user.name = "Ma\x00ry"
    with pytest.raises(ValidationError):
        user.full_clean()
