"""Rooms of Socket.IO sockets across a cluster of workers. `room_group(room)` names the
Channels group that reaches a room's sockets on every worker:

    await get_channel_layer().group_send(
        room_group("Maths"), {"type": "socketio.emit", "event": "news", "args": [...]}
    )
"""

from rooms.cluster.names import room_group

__all__ = ["room_group"]
