"""Raw Engine.IO / Socket.IO frames over a real WebSocket, for conformance and abuse tests.

Deliberately independent of rooms.socketio.codec: these helpers speak the wire format as the
public specs write it, so a codec bug cannot hide behind the same codec on both ends.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import urllib.parse
from collections.abc import Iterable
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.integration.servers import Cluster, http

OPEN_KEYS = {"sid", "upgrades", "pingInterval", "pingTimeout", "maxPayload"}

logger = logging.getLogger(__name__)


def socketio_url(cluster: Cluster, **query: str) -> str:
    """The WebSocket URL an official client would open, plus our query parameters."""
    params = {"EIO": "4", "transport": "websocket", **query}
    return f"{cluster.ws_url}/socket.io/?{urllib.parse.urlencode(params)}"


async def open_raw(url: str, **kwargs: Any) -> ClientConnection:
    """A WebSocket with no Engine.IO logic at all; the caller reads every frame."""
    kwargs.setdefault("open_timeout", 5)
    kwargs.setdefault("ping_interval", None)  # no WebSocket-level pings muddying the picture
    return await connect(url, **kwargs)


async def recv(ws: ClientConnection, within: float = 5) -> str | bytes:
    return await asyncio.wait_for(ws.recv(), within)


async def recv_packet(ws: ClientConnection, within: float = 5) -> str:
    """The next text frame that is not an Engine.IO PING (those are answered)."""
    async with asyncio.timeout(within):
        while True:
            frame = await ws.recv()
            assert isinstance(frame, str), f"unexpected binary frame {frame!r}"
            if frame == "2":
                await ws.send("3")
                continue
            return frame


async def engineio_open(cluster: Cluster, **query: str) -> tuple[ClientConnection, dict[str, Any]]:
    """Connect and read the Engine.IO OPEN packet; returns the socket and its payload."""
    ws = await open_raw(socketio_url(cluster, **query))
    frame = await recv(ws)
    assert isinstance(frame, str) and frame.startswith("0{"), frame
    return ws, json.loads(frame[1:])


async def socketio_connect(
    cluster: Cluster, auth: dict[str, Any] | None = None, **query: str
) -> tuple[ClientConnection, str, str]:
    """OPEN, then CONNECT to "/"; returns (socket, socket id, procid from "handshake")."""
    ws, _ = await engineio_open(cluster, **query)
    await ws.send("40" + ("" if auth is None else json.dumps(auth)))
    reply = await recv_packet(ws)
    assert reply.startswith('40{"sid":'), reply
    sid = json.loads(reply[2:])["sid"]
    handshake = await recv_packet(ws)
    assert handshake.startswith('42["handshake",'), handshake
    return ws, sid, json.loads(handshake[2:])[1]["procid"]


async def flood(ws: ClientConnection, frames: Iterable[str]) -> None:
    """Send each frame as fast as this client can, until the server closes the connection.

    The loop yields after each frame so the client reads what arrives meanwhile, as any
    client does: a sender that never lets its loop poll leaves the server's last frames
    unread in the kernel, where they are lost once the server resets the connection (which
    autobahn does when its Close goes unanswered for closeHandshakeTimeout, 1 s) and the
    next write fails.
    """
    try:
        for frame in frames:
            await ws.send(frame)
            await asyncio.sleep(0)
    except ConnectionClosed:
        return


async def closed_by_server(ws: ClientConnection, within: float = 5) -> list[str | bytes]:
    """Read until the server closes the connection; returns what it sent before.

    Raises TimeoutError if the connection is still open after `within` seconds.
    """
    frames: list[str | bytes] = []
    async with asyncio.timeout(within):
        try:
            while True:
                frames.append(await ws.recv())
        except ConnectionClosed as closed:
            if not frames:  # what the server said, for a test that expected a frame
                logger.warning("closed with no frame before: %r", closed)
            return frames


async def wait_events(ws: ClientConnection, *expected: list[Any], within: float = 5) -> None:
    """Read packets until every EVENT in `expected` ([name, *args] each) has arrived, in any
    order, other packets in between; fail after `within` seconds."""
    missing = [json.dumps(e) for e in expected]
    seen: list[str] = []
    try:
        async with asyncio.timeout(within):
            while missing:
                frame = await recv_packet(ws, within)
                if (
                    frame.startswith("42")
                    and (event := json.dumps(json.loads(frame[2:]))) in missing
                ):
                    missing.remove(event)
                else:
                    seen.append(frame)
    except TimeoutError:
        raise AssertionError(f"still missing {missing} after {within} s; also got {seen}") from None


async def events_until_quiet(
    ws: ClientConnection, quiet: float = 0.5, limit: float = 5
) -> list[Any]:
    """Every EVENT ([name, *args]) received until nothing came for `quiet` seconds."""
    events: list[Any] = []
    async with asyncio.timeout(limit):
        while True:
            try:
                frame = await recv_packet(ws, quiet)
            except TimeoutError:
                return events
            if frame.startswith("42"):
                events.append(json.loads(frame[2:]))


async def events_then_marker(
    cluster: Cluster, ws: ClientConnection, room: str, expected: list[list[Any]], within: float = 10
) -> list[Any]:
    """Every EVENT ([name, *args]) the observer `ws` in `room` receives until all of
    `expected` have arrived and, after them, a marker socket that joins the room and leaves.

    The room's events travel on one Redis channel, delivered in order: anything published
    before the marker's departure is among what this returns, without guessing how long
    silence must last. The marker's own two events are left out.
    """
    events: list[Any] = []
    wanted = [json.dumps(e) for e in expected]
    async with asyncio.timeout(within):
        while not all(w in [json.dumps(e) for e in events] for w in wanted):
            frame = await recv_packet(ws, within)
            if frame.startswith("42"):
                events.append(json.loads(frame[2:]))
        marker, marker_sid, _ = await socketio_connect(cluster, id_user="10", room=room)
        await marker.close()
        while True:
            frame = await recv_packet(ws, within)
            if not frame.startswith("42"):
                continue
            event = json.loads(frame[2:])
            if event == ["socket-disconnected", marker_sid]:
                return events
            if event != ["socket-connected", marker_sid]:
                events.append(event)


async def roster(cluster: Cluster, room: str) -> list[dict[str, Any]]:
    quoted = urllib.parse.quote(room, safe="")
    status, _, body = await asyncio.to_thread(http, f"{cluster.url}/{quoted}/users")
    assert status == 200, (status, body)
    return body  # type: ignore[no-any-return]


async def socket_count(cluster: Cluster) -> int:
    """Sockets registered on all live workers, as GET /workers reports them."""
    status, _, body = await asyncio.to_thread(http, f"{cluster.url}/workers")
    assert status == 200, (status, body)
    return sum(w["sockets"] for w in body)


async def eventually(predicate: Any, within: float = 5, interval: float = 0.1) -> Any:
    """Await the async predicate until it returns something truthy, for at most `within`
    seconds; returns its last result, for the caller to assert on."""
    deadline = time.monotonic() + within
    while True:
        result = await predicate()
        if result or time.monotonic() > deadline:
            return result
        await asyncio.sleep(interval)


async def rosters_empty(cluster: Cluster, rooms: Iterable[str], within: float = 5) -> None:
    """Every room's roster is empty, or becomes empty within `within` seconds."""
    for room in rooms:

        async def empty(room: str = room) -> bool:
            return await roster(cluster, room) == []

        assert await eventually(empty, within), (room, await roster(cluster, room))
