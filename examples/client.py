"""A Socket.IO client in Python (python-socketio):
    python examples/client.py [URL] [ID_USER] [ROOM]
Connects as a user to a room, joins a second room, announces a new name, prints every event
it receives for LISTEN_SECONDS (default 2), then disconnects."""

import asyncio
import json
import os
import sys

import socketio

DEFAULTS = ["http://localhost:8000", "1", "Maths"]
URL, ID_USER, ROOM = sys.argv[1:4] + DEFAULTS[len(sys.argv[1:4]) :]
sio = socketio.AsyncClient(reconnection=False)


@sio.on("*")  # handshake, socket-connected, socket-disconnected, identity-change, ...
async def show(event: str, payload: object) -> None:
    print(event, json.dumps(payload), flush=True)


@sio.event
async def connect_error(data: object) -> None:  # e.g. {"message": "Unknown id_user: 99"}
    message = data.get("message") if isinstance(data, dict) else data
    print("connect_error:", message, file=sys.stderr)


async def main() -> int:
    try:
        # the defaults: long-polling, then the upgrade to WebSocket (any worker serves both);
        # transports=["websocket"] saves the first round trip where WebSockets pass
        await sio.connect(URL, auth={"id_user": ID_USER, "room": ROOM})
    except socketio.exceptions.ConnectionError:
        return 1
    print("join ack", json.dumps(await sio.call("join", "Physics")), flush=True)
    renamed = await sio.call("identity-change", {"name": f"User {ID_USER}"})
    print("identity-change ack", json.dumps(renamed), flush=True)
    await asyncio.sleep(float(os.environ.get("LISTEN_SECONDS", "2")))
    await sio.disconnect()
    return 0


sys.exit(asyncio.run(main()))
