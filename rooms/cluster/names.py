"""Room names as clients send them, and the bus group names they map to."""

from __future__ import annotations

import hashlib
import re

MAX_ROOM_LENGTH = 100
# Names kept as they are in a group name: short plain ASCII, readable in Redis (MONITOR,
# PUBSUB CHANNELS); anything else is hashed, so group names stay bounded and unambiguous.
_GROUP_SAFE = re.compile(r"[A-Za-z0-9_.-]{1,90}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


class InvalidRoom(ValueError):
    """A room name the service does not accept; the message says why."""


def validate_room(raw: object) -> str:
    """The room name for a client-supplied value: 1..100 characters, no control characters.

    Numbers are accepted and turned into strings, as socket.io does for `socket.join(5)`.
    """
    if isinstance(raw, bool) or not isinstance(raw, str | int):
        raise InvalidRoom("room must be a non-empty string")
    room = str(raw)
    if not room:
        raise InvalidRoom("room must be a non-empty string")
    if len(room) > MAX_ROOM_LENGTH:
        raise InvalidRoom(f"room must be at most {MAX_ROOM_LENGTH} characters")
    if _CONTROL.search(room):
        raise InvalidRoom("room must not contain control characters")
    return room


def group_for_room(room: str) -> str:
    """A valid, collision-free bus group name for any room name.

    Plain ASCII names stay readable ("r.Maths"); anything else becomes a SHA-256 digest
    ("h.<64 hex>"). The two prefixes keep the two forms apart, so no two rooms share a group.
    """
    if _GROUP_SAFE.fullmatch(room):
        return f"r.{room}"
    return "h." + hashlib.sha256(room.encode("utf-8")).hexdigest()
