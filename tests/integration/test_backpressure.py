"""A client that does not read its frames is cut off; its worker's memory stays bounded.

A raw client (a plain socket with a small receive buffer) connects into a room and then
never reads, while a sender keeps the room busy and a well-behaved peer reads everything.
The frames for the non-reader fill the kernel's buffers, then wait in the worker; once
more than SOCKETIO_MAX_BUFFERED_BYTES wait there the socket is closed and announced like
any other disconnect. A client that blindly answers pings without reading goes the same
way: the heartbeat alone would keep it alive (its pings are answered), so only the cap
can cut it off within the deadline. Both with the server tuning on (frames written
straight onto the connection) and off (daphne's ASGI send).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import socket
import struct
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from tests.integration.conftest import module_cluster
from tests.integration.servers import Cluster, RedisServer
from tests.integration.wire import eventually, recv_packet, roster, socketio_connect

# The peer reads a room carrying 6.4 MB/s in the test process: starved of the CPU by a test
# process beside it, it falls behind by the outgoing cap and is cut off itself.
pytestmark = [pytest.mark.integration, pytest.mark.own_tuning, pytest.mark.alone]

CAP = 256 * 1024  # SOCKETIO_MAX_BUFFERED_BYTES of the cluster under test
PING_INTERVAL_S = 1.0
# Far beyond the test: the heartbeat cannot be what closes the non-reader in time.
PING_TIMEOUT_MS = 60_000
PAYLOAD = 64 * 1024  # each identity-change the sender sends (SOCKETIO_MAX_PAYLOAD: 1 MB)
EVENTS_PER_S = 100  # so the room carries 6.4 MB/s: 64 MB in the 10 s the cut-off may take
CUT_OFF_WITHIN_S = 10.0
AFTER_CUT_OFF = 50  # frames the peer reads after the cut-off while the RSS is still watched
# What a worker's RSS may grow by while it serves the room, the cut-off included. Without a
# cap the non-reader's frames alone grow its worker by the room's rate (6.4 MB/s).
RSS_GROWTH_BOUND_KB = 24 * 1024


def rss_kb(pid: int) -> int:
    """VmRSS of a process, from /proc (proc(5))."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


def client_frame(text: str) -> bytes:
    """A masked text frame, as every client frame must be (RFC 6455 5.1, 5.3)."""
    payload = text.encode()
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    assert len(payload) < 126
    return bytes((0x81, 0x80 | len(payload))) + mask + masked


@dataclass
class NonReader:
    """A Socket.IO client on a plain socket: it reads up to its handshake, then nothing."""

    sock: socket.socket
    sid: str
    procid: str

    def pong(self) -> None:
        """An Engine.IO PONG sent blind, without reading the PING it answers."""
        self.sock.sendall(client_frame("3"))


def _read_exactly(sock: socket.socket, count: int) -> bytes:
    data = b""
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        if not chunk:
            raise ConnectionError("closed during the handshake")
        data += chunk
    return data


def _read_text_frame(sock: socket.socket) -> str:
    """One unfragmented, unmasked server text frame (RFC 6455 5.2)."""
    first, second = _read_exactly(sock, 2)
    assert first == 0x81, hex(first)
    length = second & 0x7F
    if length == 126:
        (length,) = struct.unpack("!H", _read_exactly(sock, 2))
    elif length == 127:
        (length,) = struct.unpack("!Q", _read_exactly(sock, 8))
    return _read_exactly(sock, length).decode()


def connect_non_reader(cluster: Cluster, id_user: str, room: str) -> NonReader:
    """HTTP upgrade, Engine.IO OPEN, Socket.IO CONNECT into `room` and its handshake event,
    with a 4 KB receive buffer (set before connecting, so the TCP window stays small)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(5)
    sock.connect(("127.0.0.1", cluster.port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{cluster.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += _read_exactly(sock, 1)
    assert head.startswith(b"HTTP/1.1 101"), head
    assert _read_text_frame(sock).startswith("0{")
    sock.sendall(client_frame("40" + json.dumps({"id_user": id_user, "room": room})))
    frames: list[str] = []
    while len(frames) < 2:
        frame = _read_text_frame(sock)
        if frame != "2":  # a PING before the handshake stays unanswered
            frames.append(frame)
    assert frames[0].startswith('40{"sid":'), frames
    assert frames[1].startswith('42["handshake",'), frames
    sid = json.loads(frames[0][2:])["sid"]
    procid = json.loads(frames[1][2:])[1]["procid"]
    return NonReader(sock, sid, procid)


class Peer:
    """A well-behaved member of the room: reads every frame, notes who left."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.left: set[str] = set()
        self.frames = 0
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        with contextlib.suppress(ConnectionClosed):
            while True:
                frame = await recv_packet(self.ws, within=60)
                self.frames += 1
                if frame.startswith('42["socket-disconnected",'):
                    self.left.add(json.loads(frame[2:])[1])

    async def wait_left(self, sid: str, within: float) -> bool:
        async def left() -> bool:
            return sid in self.left

        return bool(await eventually(left, within))

    async def close(self) -> None:
        self.task.cancel()
        await self.ws.close()


@contextlib.asynccontextmanager
async def busy_room(cluster: Cluster, room: str) -> AsyncIterator[None]:
    """A sender that keeps identity-change events of PAYLOAD bytes flowing into `room`."""
    ws, _, _ = await socketio_connect(cluster, id_user="2", room=room)
    frame = "42" + json.dumps(["identity-change", {"name": "x" * PAYLOAD}])

    async def send() -> None:
        while True:
            await ws.send(frame)
            await asyncio.sleep(1 / EVENTS_PER_S)

    async def drain() -> None:  # pings answered, anything else dropped
        with contextlib.suppress(ConnectionClosed):
            while True:
                await recv_packet(ws, within=60)

    tasks = [asyncio.create_task(send()), asyncio.create_task(drain())]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        await ws.close()


@pytest.fixture(scope="module", params=["on", "off"])
def cluster(
    request: pytest.FixtureRequest,
    redis_server: RedisServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Cluster]:
    """2 workers with a 256 KB outgoing cap, fast pings and a ping timeout beyond the test;
    each test closes its sockets, and measures the workers' growth from its own start."""
    yield from module_cluster(
        2,
        redis_server,
        tmp_path_factory,
        SERVER_TUNING=request.param,
        SOCKETIO_MAX_BUFFERED_BYTES=str(CAP),
        SOCKETIO_IDENTITY_CHANGE_RATE=str(EVENTS_PER_S * 2),
        SOCKETIO_BYTE_RATE=str(EVENTS_PER_S * PAYLOAD * 2),  # the sender's 6.4 MB/s
        SOCKETIO_FANOUT_BYTES_PER_SECOND=str(EVENTS_PER_S * 2 * (PAYLOAD + 1024)),
        SOCKETIO_PING_INTERVAL_MS=str(int(PING_INTERVAL_S * 1000)),
        SOCKETIO_PING_TIMEOUT_MS=str(PING_TIMEOUT_MS),
    )


@pytest.mark.parametrize("answers_pings", [False, True], ids=["never-reads", "blind-pongs"])
async def test_a_client_that_does_not_read_is_cut_off_and_its_worker_stays_small(
    cluster: Cluster, answers_pings: bool
) -> None:
    """The non-reader leaves the roster and its room hears `socket-disconnected` for it
    within CUT_OFF_WITHIN_S of traffic, and no worker's RSS grows by RSS_GROWTH_BOUND_KB
    meanwhile (the room carries 6.4 MB/s); blind pongs change nothing."""
    room = f"bp-{uuid.uuid4().hex[:8]}"
    peer_ws, _, _ = await socketio_connect(cluster, id_user="1", room=room)
    peer = Peer(peer_ws)
    non_reader = await asyncio.to_thread(connect_non_reader, cluster, "3", room)
    pids = cluster.children()
    baseline = {pid: rss_kb(pid) for pid in pids}
    peak = dict(baseline)

    async def pong_blind() -> None:
        while True:
            await asyncio.sleep(PING_INTERVAL_S)
            non_reader.pong()

    async def gone() -> bool:
        for pid in pids:
            peak[pid] = max(peak[pid], rss_kb(pid))
        return non_reader.sid not in {e["id_socket"] for e in await roster(cluster, room)}

    ponger = asyncio.create_task(pong_blind()) if answers_pings else None
    try:
        assert {e["id_socket"] for e in await roster(cluster, room)} >= {non_reader.sid}
        started = time.monotonic()
        async with busy_room(cluster, room):
            cut_off = await eventually(gone, CUT_OFF_WITHIN_S, interval=0.2)
            took = time.monotonic() - started
            # the room stays busy a while longer: the peer reads AFTER_CUT_OFF more frames
            wanted = peer.frames + AFTER_CUT_OFF

            async def peer_read_more() -> bool:
                await gone()  # samples RSS
                return peer.frames >= wanted

            more = await eventually(peer_read_more, 15.0, interval=0.2)
        growth = {pid: peak[pid] - baseline[pid] for pid in pids}
        outcome = "cut off" if cut_off else "still there"
        print(f"{outcome} after {took:.1f} s; RSS growth per worker (KB): {growth}")
        assert cut_off, f"still in the roster after {CUT_OFF_WITHIN_S} s; growth {growth}"
        assert await peer.wait_left(non_reader.sid, within=5)
        assert more, f"the peer received {peer.frames} frames, wanted {wanted}"
        assert max(growth.values()) < RSS_GROWTH_BOUND_KB, growth
    finally:
        if ponger is not None:
            ponger.cancel()
        non_reader.sock.close()
        await peer.close()
