"""Long-polling payloads (rooms.engineio.payload), as the protocol's test suite sends them."""

from __future__ import annotations

import pytest

from rooms.engineio import payload
from rooms.engineio.errors import ProtocolError


@pytest.mark.parametrize(
    ("body", "items"),
    [
        ("4hello", ["4hello"]),
        ("4test1\x1e4test2\x1e4test3", ["4test1", "4test2", "4test3"]),
        ("4hello\x1ebAQIDBA==", ["4hello", bytes([1, 2, 3, 4])]),
    ],
)
def test_round_trip(body: str, items: list[payload.Item]) -> None:
    assert payload.decode(body, max_packets=16) == items
    assert payload.encode(items) == body


@pytest.mark.parametrize("body", ["", "4a\x1e", "\x1e4a", "b!!", "bAQI"])
def test_malformed_payloads_are_refused(body: str) -> None:
    with pytest.raises(ProtocolError):
        payload.decode(body, max_packets=16)


def test_more_packets_than_allowed_are_refused_without_splitting_them_all() -> None:
    with pytest.raises(ProtocolError, match="more than 3 packets"):
        payload.decode("\x1e".join(["3"] * 100_000), max_packets=3)
    assert payload.decode("3\x1e3\x1e3", max_packets=3) == ["3", "3", "3"]
