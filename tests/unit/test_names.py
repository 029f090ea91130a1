"""Room names are plain text: what a client may name a room, and its group on the bus."""

from __future__ import annotations

import pytest

from rooms.cluster.names import InvalidRoom, room_group, validate_room


@pytest.mark.parametrize("raw", ["Maths", "café & co/1", 5, "x" * 100, "🚀"])
def test_plain_text_rooms_are_accepted(raw: object) -> None:
    assert validate_room(raw) == str(raw)


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        ("", "non-empty"),
        ("x" * 101, "at most 100"),
        ("a\x00b", "control characters"),
        ("a\nb", "control characters"),
        ("\ud800", "invalid Unicode"),
        ("a\udfffb", "invalid Unicode"),
        (True, "non-empty string"),
        (None, "non-empty string"),
    ],
)
def test_anything_else_is_refused_saying_why(raw: object, why: str) -> None:
    with pytest.raises(InvalidRoom, match=why):
        validate_room(raw)


def test_group_names_are_readable_for_plain_ascii_and_hashed_otherwise() -> None:
    assert room_group("Maths") == "r.Maths"
    assert room_group("café").startswith("h.") and len(room_group("café")) == 66
    assert room_group("h.x") != room_group("x")
