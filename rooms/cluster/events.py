"""The messages workers send each other over the bus, by name.

Every worker subscribes its own channel, the `cluster` group and one group per room it
holds sockets in. Room events carry Socket.IO text frames that the sender encoded once;
the cluster hands them to sockets without reading them (the codec is the consumer's).
"""

from __future__ import annotations

import secrets
import uuid
from typing import Any, TypeAlias

Frame: TypeAlias = str | list[str | bytes]
"""What a room event hands each socket: a text frame, or a binary event's text frame and its
attachments (binary frames), already encoded (the codec's Frame: the cluster never encodes
Socket.IO itself)."""

CLUSTER_GROUP = "cluster"

ROOM_EMIT = "room.emit"  # {room, frame, except, [event]}: a frame for a room's sockets
USER_RENAMED = "user.renamed"  # {id_user, event}: each worker tells that user's rooms
USER_DELETED = "user.deleted"  # a user is gone: CONNECTs as that user are refused
WORKER_DOWN = "worker.down"  # a worker was found dead: each worker tells all its sockets
SOCKETIO_EMIT = "socketio.emit"  # {event, args}: sent by Django code to a room's group
QUERY = "cluster.query"  # {kind, args, request, reply_to, origin}: a scatter-gather question
REPLY = "cluster.reply"  # {request, procid, payload | declined}: one worker's answer to it
REQUEST = "cluster.request"  # {kind, args, request, reply_to, origin}: a question to one worker

# The kinds of cluster.query (answered by rooms.cluster.node.WorkerNode._answer)
ROSTER = "roster"  # {room}: [(id_socket, id_user)] of the room's sockets
ROSTER_JSON = "roster_json"  # {room}: the room's roster entries, JSON encoded
STATS = "stats"  # {}: the worker's /workers entry
SOCKETS_PER_USER = "sockets_per_user"  # {}: {id_user: sockets} (the admin's "online now")
RENAME_REACH = "rename_reach"  # {id_user}: room events a rename of that user costs here
ROOMS = "rooms"  # {prefix, most}: [(room, sockets)], this worker's largest rooms with prefix
METRICS = "metrics"  # {}: the worker's Prometheus series (rooms.metrics.exposition.snapshot)
ROSTER_KINDS = frozenset((ROSTER, ROSTER_JSON))  # counted by outcome in GET /metrics


def query(kind: str, args: dict[str, Any], *, reply_to: str, origin: str) -> dict[str, Any]:
    """A question to every worker; `origin` is the asking worker's procid (it answers
    itself), or a fresh id for an asker that is no worker."""
    return {
        "type": QUERY,
        "kind": kind,
        "args": args,
        "request": uuid.uuid4().hex,
        "reply_to": reply_to,
        "origin": origin,
    }


def request(kind: str, args: dict[str, Any], *, reply_to: str, origin: str) -> dict[str, Any]:
    """A question to one worker (rooms.cluster.requests), answered with a `reply`."""
    return {**query(kind, args, reply_to=reply_to, origin=origin), "type": REQUEST}


def reply(question: dict[str, Any], procid: str) -> dict[str, Any]:
    """An answer to `question`, without its payload (`payload` or `declined` is added)."""
    return {"type": REPLY, "request": question["request"], "procid": procid}


def new_event_id() -> str:
    """The id every copy of one event carries (`room_emit`'s `event`), so that a socket
    reached by several of them is served once (rooms.cluster.fanout)."""
    return secrets.token_hex(8)


def room_emit(
    room: str, frame: Frame, *, except_socket: str | None = None, event: str | None = None
) -> dict[str, Any]:
    """A frame for the sockets of `room` but `except_socket`; `event` names an event sent
    to several rooms at once, so a socket in more than one of them is served once."""
    message: dict[str, Any] = {"type": ROOM_EMIT, "room": room, "frame": frame}
    message["except"] = except_socket
    if event is not None:
        message["event"] = event
    return message


def socketio_emit(event: str, *args: Any) -> dict[str, Any]:
    """What a Channels `group_send` to a room's group (rooms.room_group) carries to emit a
    Socket.IO event to the room's sockets on every worker."""
    return {"type": SOCKETIO_EMIT, "event": event, "args": list(args)}


def user_renamed(id_user: str) -> dict[str, Any]:
    """A rename for every worker. Each worker holding sockets of that user forwards it to
    their rooms as a room event with this one event id, so a socket reached by several
    workers' copies is served once (rooms.cluster.fanout)."""
    return {"type": USER_RENAMED, "id_user": id_user, "event": new_event_id()}


def user_deleted(id_user: str) -> dict[str, Any]:
    return {"type": USER_DELETED, "id_user": id_user}


def worker_down(procid: str) -> dict[str, Any]:
    return {"type": WORKER_DOWN, "procid": procid}
