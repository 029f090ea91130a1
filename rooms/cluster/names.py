"""Room names as clients send them, and the bus group names they map to."""

from __future__ import annotations

import hashlib
import re

MAX_ROOM_LENGTH = 100
# Names kept as they are in a group name: short plain ASCII, readable in Redis (MONITOR,
# PUBSUB CHANNELS); anything else is hashed, so group names stay bounded and unambiguous.
_GROUP_SAFE = re.compile(r"[A-Za-z0-9_.-]{1,90}")
# control characters, and lone UTF-16 surrogates (a JSON "\ud800" escape decodes to one;
# it cannot be encoded back to UTF-8 for any client)
_NOT_TEXT = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


class InvalidRoom(ValueError):
    """A room name the service does not accept; the message says why."""


def validate_room(raw: object) -> str:
    """The room name for a client-supplied value: 1..100 characters of plain text.

    Numbers are accepted and turned into strings, as socket.io does for `socket.join(5)`.
    """
    if isinstance(raw, bool) or not isinstance(raw, str | int):
        raise InvalidRoom("room must be a non-empty string")
    room = str(raw)
    if not room:
        raise InvalidRoom("room must be a non-empty string")
    if len(room) > MAX_ROOM_LENGTH:
        raise InvalidRoom(f"room must be at most {MAX_ROOM_LENGTH} characters")
    if _NOT_TEXT.search(room):
        raise InvalidRoom("room must not contain control characters or invalid Unicode")
    return room


def room_group(room: str) -> str:
    """The group of a room's sockets on every worker, for any room name: a Channels group
    name (ASCII letters, digits, `-_.`, under 100 characters), so `group_send` of
    `{"type": "socketio.emit", "event": ..., "args": [...]}` to it reaches them
    (`rooms.room_group`).

    Plain ASCII names stay readable ("r.Maths"); anything else becomes a SHA-256 digest
    ("h.<64 hex>"). The two prefixes keep the two forms apart, so no two rooms share a group.
    """
    if _GROUP_SAFE.fullmatch(room):
        return f"r.{room}"
    return "h." + hashlib.sha256(room.encode("utf-8")).hexdigest()


def is_hashed(room: str) -> bool:
    """Whether the room's group is a digest, from which the room cannot be read back."""
    return _GROUP_SAFE.fullmatch(room) is None


def room_of_plain_group(group: str) -> str | None:
    """The room of a readable group ("r.Maths" -> "Maths"); None for a digest."""
    return group[2:] if group.startswith("r.") else None
