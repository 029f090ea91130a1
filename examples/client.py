"""A Socket.IO client in Python (python-socketio's AsyncClient):
    python examples/client.py [URL] [ID_USER] [ROOM]

Connects as a user to a room, joins a second room, announces a new name, prints every
event it receives for LISTEN_SECONDS (default 2), then disconnects.
"""

import asyncio
import json
import os
import sys

import socketio


def argument(position: int, variable: str, default: str) -> str:
    """The command-line argument at `position`, else the environment variable, else default."""
    return sys.argv[position] if len(sys.argv) > position else os.environ.get(variable, default)


URL = argument(1, "SERVER_URL", "http://localhost:8000")
ID_USER = argument(2, "ID_USER", "1")
ROOM = argument(3, "ROOM", "Maths")
LISTEN_SECONDS = float(os.environ.get("LISTEN_SECONDS", "2"))

sio = socketio.AsyncClient(reconnection=False)


@sio.on("*")  # handshake, socket-connected, socket-disconnected, identity-change, ...
async def show(event: str, payload: object) -> None:
    print(event, json.dumps(payload), flush=True)


@sio.event
async def connect_error(data: object) -> None:
    # the server's refusal, {"message": "Unknown id_user: 99"}, or a string when unreachable
    message = data.get("message") if isinstance(data, dict) else data
    print("connect_error:", message, file=sys.stderr)


async def main() -> int:
    try:
        await sio.connect(URL, transports=["websocket"], auth={"id_user": ID_USER, "room": ROOM})
    except socketio.exceptions.ConnectionError:
        return 1
    print("join ack", json.dumps(await sio.call("join", "Physics")), flush=True)
    renamed = await sio.call("identity-change", {"name": f"User {ID_USER}"})
    print("identity-change ack", json.dumps(renamed), flush=True)
    await asyncio.sleep(LISTEN_SECONDS)
    await sio.disconnect()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
