"""The messages workers send each other over the bus, by name.

Every worker subscribes its own channel, the `cluster` group and one group per room it
holds sockets in. Room events carry Socket.IO text frames that the sender encoded once;
the cluster hands them to sockets without reading them (the codec is the consumer's).
"""

from __future__ import annotations

from typing import Any

CLUSTER_GROUP = "cluster"

ROOM_EMIT = "room.emit"  # {room, frame, except, [event]}: a frame for a room's sockets
USER_RENAMED = "user.renamed"  # a user's name changed: each worker tells that user's rooms
USER_DELETED = "user.deleted"  # a user is gone: CONNECTs as that user are refused
WORKER_DOWN = "worker.down"  # a worker was found dead: each worker tells all its sockets
QUERY = "cluster.query"  # a scatter-gather question (rooms.cluster.gather)
REPLY = "cluster.reply"  # one worker's answer to it


def user_renamed(id_user: str) -> dict[str, Any]:
    return {"type": USER_RENAMED, "id_user": id_user}


def user_deleted(id_user: str) -> dict[str, Any]:
    return {"type": USER_DELETED, "id_user": id_user}


def worker_down(procid: str) -> dict[str, Any]:
    return {"type": WORKER_DOWN, "procid": procid}
