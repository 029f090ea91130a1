"""Users seen to exist are trusted for a TTL, and forgotten at once when deleted."""

from __future__ import annotations

from rooms.cluster.known_users import KnownUsers


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_user_seen_is_known_for_the_ttl_only() -> None:
    clock = Clock()
    known = KnownUsers(ttl=2.0, clock=clock)
    assert "3" not in known
    known.remember("3")
    clock.now += 2.0
    assert "3" in known
    clock.now += 0.01
    assert "3" not in known  # stale: the next CONNECT asks the database again


def test_forgetting_takes_effect_at_once() -> None:
    known = KnownUsers(ttl=60, clock=Clock())
    known.remember("3")
    known.remember("4")
    known.forget("3")
    known.forget("never-seen")
    assert "3" not in known and "4" in known
