"""This worker's sockets and the rooms they are in: a plain class, no I/O.

Rosters are answered from here and nowhere else: no presence state is stored in Redis.
"""

from __future__ import annotations

import heapq
import os
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import orjson

from rooms.cluster.events import Frame
from rooms.cluster.names import is_hashed, room_group, room_of_plain_group

Deliver = Callable[[Frame], Awaitable[None]]
DeliverNow = Callable[[Frame], bool]


def never_at_once(_frame: Frame) -> bool:
    return False


def worker_slot() -> int:
    """This worker's slot in runcluster's supervisor (which sets WORKER_SLOT); 0 elsewhere."""
    return int(os.environ.get("WORKER_SLOT", "0"))


def make_procid(slot: int | None = None) -> str:
    """A worker id unique across restarts and hosts: slot, pid, and a random suffix.

    The pid alone repeats across containers (often 1) and after restarts.
    """
    slot = slot if slot is not None else worker_slot()
    return f"w{slot}-{os.getpid()}-{secrets.token_hex(2)}"


@dataclass(eq=False)
class LocalSocket:
    """One connected Socket.IO socket of this process."""

    id_socket: str
    id_user: str
    deliver: Deliver  # sends one frame (or a binary event's frames) to this socket's WebSocket
    rooms: set[str] = field(default_factory=set)
    # writes the frame without awaiting anything where it can; False: use `deliver`.
    # A fan-out calls it once per socket, where three coroutines per frame were measurable.
    deliver_now: DeliverNow = never_at_once


class Registry:
    def __init__(self) -> None:
        self._sockets: dict[str, LocalSocket] = {}  # id_socket -> socket
        self._rooms: dict[str, set[str]] = {}  # room -> socket ids; empty rooms are deleted
        self._entry_json: dict[str, bytes] = {}  # id_socket -> its roster entry, encoded
        # group -> room, for the rooms whose group is a digest (rooms.cluster.names)
        self._hashed_groups: dict[str, str] = {}

    def __len__(self) -> int:
        return len(self._sockets)

    @property
    def room_count(self) -> int:
        return len(self._rooms)

    def add(self, sock: LocalSocket) -> None:
        if sock.id_socket in self._sockets:
            raise ValueError(f"socket {sock.id_socket} is already registered")
        self._sockets[sock.id_socket] = sock

    def get(self, id_socket: str) -> LocalSocket | None:
        return self._sockets.get(id_socket)

    def remove(self, id_socket: str) -> LocalSocket | None:
        """Forget a socket; returns it (with the rooms it was in) or None if unknown."""
        sock = self._sockets.pop(id_socket, None)
        self._entry_json.pop(id_socket, None)
        if sock is not None:
            for room in sock.rooms:
                self._discard_member(room, id_socket)
        return sock

    def join(self, id_socket: str, room: str) -> bool:
        """Put a socket in a room; True when the room had no socket of this worker before."""
        sock = self._sockets[id_socket]
        sock.rooms.add(room)
        members = self._rooms.setdefault(room, set())
        first = not members
        members.add(id_socket)
        if first and is_hashed(room):
            self._hashed_groups[room_group(room)] = room
        return first

    def leave(self, id_socket: str, room: str) -> bool:
        """Take a socket out of a room; True when that emptied the room on this worker."""
        sock = self._sockets[id_socket]
        if room not in sock.rooms:
            return False
        sock.rooms.discard(room)
        return self._discard_member(room, id_socket)

    def _discard_member(self, room: str, id_socket: str) -> bool:
        members = self._rooms.get(room)
        if members is None:
            return False
        members.discard(id_socket)
        if members:
            return False
        del self._rooms[room]
        if is_hashed(room):
            self._hashed_groups.pop(room_group(room), None)
        return True

    def has_room(self, room: str) -> bool:
        return room in self._rooms

    def room_of_group(self, group: str) -> str | None:
        """The room with sockets here whose group is `group`, or None."""
        room = room_of_plain_group(group)
        if room is None:
            room = self._hashed_groups.get(group)
        return room if room is not None and room in self._rooms else None

    def in_room(self, room: str) -> list[LocalSocket]:
        return [self._sockets[sid] for sid in self._rooms.get(room, ())]

    def roster(self, room: str) -> list[tuple[str, str]]:
        """(id_socket, id_user) of this worker's sockets in the room."""
        return [(sid, self._sockets[sid].id_user) for sid in self._rooms.get(room, ())]

    def roster_json(self, room: str, procid: str) -> bytes:
        """This worker's sockets in the room as comma-separated JSON objects of the roster
        (contract.md: id_socket, id_user, data; plus procid). Each socket's entry is encoded
        once and kept: building 1000 fresh dicts per request cost an eighth of the CPU of
        a 1000-socket roster, decoding and re-encoding them between workers as much again."""
        parts = []
        for sid in self._rooms.get(room, ()):
            entry = self._entry_json.get(sid)
            if entry is None:
                user = self._sockets[sid].id_user
                fields = {"id_socket": sid, "id_user": user, "procid": procid, "data": {}}
                entry = self._entry_json[sid] = orjson.dumps(fields)
            parts.append(entry)
        return b",".join(parts)

    def room_sizes(self, prefix: str, most: int) -> list[tuple[str, int]]:
        """(room, sockets here) of the `most` largest rooms whose name starts with `prefix`,
        largest first, then by name."""
        sizes = [(room, len(sids)) for room, sids in self._rooms.items() if room.startswith(prefix)]
        return heapq.nsmallest(most, sizes, key=lambda size: (-size[1], size[0]))

    def sockets_per_user(self) -> dict[str, int]:
        """How many of this worker's sockets each connected user has."""
        counts: dict[str, int] = {}
        for sock in self._sockets.values():
            counts[sock.id_user] = counts.get(sock.id_user, 0) + 1
        return counts

    def of_user(self, id_user: str) -> list[LocalSocket]:
        return [s for s in self._sockets.values() if s.id_user == id_user]

    def rooms_of_user(self, id_user: str) -> list[str]:
        """The rooms of this worker's sockets of `id_user`, sorted, each once."""
        return sorted({room for sock in self.of_user(id_user) for room in sock.rooms})

    def all(self) -> list[LocalSocket]:
        return list(self._sockets.values())
