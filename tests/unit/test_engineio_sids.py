"""Long-polling sids name their worker, and only a sid we signed names any."""

from __future__ import annotations

from rooms.engineio.sids import new_sid, owner_of


def test_a_sid_names_its_owner_only_when_it_verifies() -> None:
    key = b"k" * 32
    sid = new_sid("w1-1234-abcd", key)
    assert owner_of(sid, key) == "w1-1234-abcd"
    assert new_sid("w1-1234-abcd", key) != sid
    forged = sid.replace("w1-1234", "w2-1234")
    altered = ("A" if sid[0] != "A" else "B") + sid[1:]
    for other in (forged, altered, "nonexistent", "", "a.b.c", sid + "x"):
        assert owner_of(other, key) is None, other
    assert owner_of(sid, b"another key") is None
