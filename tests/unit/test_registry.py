"""The per-worker registry's roster, as tuples and as pre-encoded JSON."""

from __future__ import annotations

import orjson

from rooms.cluster.names import room_group
from rooms.cluster.registry import LocalSocket, Registry


async def nowhere(frame: object) -> None:
    return None


def registry_with(*sockets: tuple[str, str, list[str]]) -> Registry:
    registry = Registry()
    for id_socket, id_user, rooms in sockets:
        registry.add(LocalSocket(id_socket=id_socket, id_user=id_user, deliver=nowhere))
        for room in rooms:
            registry.join(id_socket, room)
    return registry


def test_roster_json_holds_the_same_sockets_as_the_roster() -> None:
    registry = registry_with(("s1", "1", ["a", "b"]), ("s2", "2", ["a"]), ("s3", "1", ["b"]))
    for room in ("a", "b"):
        parsed = orjson.loads(b"[" + registry.roster_json(room, "w0-1-ab") + b"]")
        assert sorted((e["id_socket"], e["id_user"]) for e in parsed) == sorted(
            registry.roster(room)
        )
        assert all(e["procid"] == "w0-1-ab" and e["data"] == {} for e in parsed)


def test_an_empty_room_gives_nothing_to_join() -> None:
    assert registry_with(("s1", "1", ["a"])).roster_json("elsewhere", "w0") == b""


def test_leaving_and_removing_take_sockets_out_of_the_json() -> None:
    registry = registry_with(("s1", "1", ["a"]), ("s2", "2", ["a"]))
    registry.roster_json("a", "w0")  # entries are now cached
    registry.leave("s1", "a")
    assert b"s1" not in registry.roster_json("a", "w0")
    registry.remove("s2")
    assert registry.roster_json("a", "w0") == b""
    assert registry._entry_json == {"s1": registry._entry_json["s1"]}  # s2's entry forgotten


def test_a_group_names_its_room_while_the_room_has_sockets_here() -> None:
    """Readable groups name their room; a digest's room is kept while it has sockets."""
    registry = registry_with(("s1", "1", ["Maths", "Mathématiques"]))
    assert registry.room_of_group(room_group("Maths")) == "Maths"
    assert registry.room_of_group(room_group("Mathématiques")) == "Mathématiques"
    assert registry.room_of_group(room_group("Physics")) is None
    registry.remove("s1")
    assert registry.room_of_group(room_group("Maths")) is None
    assert registry.room_of_group(room_group("Mathématiques")) is None
    assert registry._hashed_groups == {}


def test_room_sizes_are_the_largest_rooms_under_a_prefix() -> None:
    registry = registry_with(
        ("s1", "1", ["maths", "music", "art"]),
        ("s2", "2", ["maths", "music"]),
        ("s3", "3", ["maths"]),
    )
    assert registry.room_sizes("", 10) == [("maths", 3), ("music", 2), ("art", 1)]
    assert registry.room_sizes("m", 1) == [("maths", 3)]
    assert registry.room_sizes("mu", 10) == [("music", 2)]
    assert registry.room_sizes("x", 10) == []
