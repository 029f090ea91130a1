"""A WebSocket message split into fragments: each fragment (a continuation frame) counts
against the frame budget (SOCKETIO_FRAME_RATE) as it arrives, and a message's total size
against SOCKETIO_MAX_PAYLOAD, though no message is ever complete. Hand-built frames over a
raw socket (RFC 6455 section 5.4: a first frame with FIN=0, then continuation frames of
opcode 0), with the server tuning on and off: the client is cut off within seconds, the
workers spend little CPU on it, and their log holds no traceback."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import select
import socket
import struct
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from tests.hostile.clusters import SharedClusters
from tests.hostile.harm import Unharmed, cpu_seconds, pair_on_two_workers
from tests.integration.servers import Cluster

OPCODE_CONTINUATION, OPCODE_TEXT, OPCODE_CLOSE = 0x0, 0x1, 0x8
FLOOD_S = 15.0  # the longest an attacker keeps sending; the frame budget cuts it off long before
CUT_OFF_WITHIN_S = 5.0
CPU_PER_ATTACK_S = 1.0  # the whole attack, on all workers
MAX_PAYLOAD = 1_000_000  # SOCKETIO_MAX_PAYLOAD's default


@pytest.fixture(scope="module", params=["on", "off"], ids=["tuning-on", "tuning-off"])
def cluster(request: pytest.FixtureRequest, hostile_clusters: SharedClusters) -> Iterator[Cluster]:
    yield from hostile_clusters.for_module("development", request.param)


def client_frame(opcode: int, payload: bytes = b"", *, fin: bool) -> bytes:
    """One client frame, masked with a zero key (RFC 6455 section 5.3 allows any key)."""
    head = bytes([(0x80 if fin else 0) | opcode])
    n = len(payload)
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 1 << 16:
        head += bytes([0x80 | 126]) + struct.pack("!H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", n)
    return head + b"\0\0\0\0" + payload


@dataclass
class RawWebSocket:
    sock: socket.socket
    received: bytes = b""
    closed: bool = False
    texts: list[str] = field(default_factory=list)
    close_code: int | None = None

    @classmethod
    def open(cls, cluster: Cluster) -> RawWebSocket:
        sock = socket.create_connection(("127.0.0.1", cluster.port), timeout=10)
        ws = cls.upgrade(sock, cluster.port, "/socket.io/?EIO=4&transport=websocket")
        ws.wait_for_text(lambda text: text.startswith("0{"))
        return ws

    @classmethod
    def upgrade(cls, sock: socket.socket, port: int, target: str) -> RawWebSocket:
        """The WebSocket handshake for `target` on a connection that may have served HTTP
        requests before (RFC 6455 section 4.1)."""
        key = base64.b64encode(os.urandom(16)).decode()
        sock.sendall(
            f"GET {target} HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(4096)
            assert chunk, data
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head
        return cls(sock, rest)

    def _read_available(self, timeout: float = 0) -> None:
        while not self.closed and select.select([self.sock], [], [], timeout)[0]:
            try:
                chunk = self.sock.recv(65536)
            except (ConnectionResetError, BrokenPipeError):
                chunk = b""
            if not chunk:
                self.closed = True
                break
            self.received += chunk
            timeout = 0
        self._parse()

    def _parse(self) -> None:
        """Server frames are unmasked and, from this server, never fragmented."""
        while len(self.received) >= 2:
            opcode, n = self.received[0] & 0x0F, self.received[1] & 0x7F
            start = 2
            if n == 126:
                (n,), start = struct.unpack("!H", self.received[2:4]), 4
            elif n == 127:
                (n,), start = struct.unpack("!Q", self.received[2:10]), 10
            if len(self.received) < start + n:
                return
            payload, self.received = self.received[start : start + n], self.received[start + n :]
            if opcode == OPCODE_TEXT:
                self.texts.append(payload.decode())
                if payload == b"2":  # an Engine.IO ping: answered, as any client does
                    self.send(client_frame(OPCODE_TEXT, b"3", fin=True))
            elif opcode == OPCODE_CLOSE:
                self.close_code = struct.unpack("!H", payload[:2])[0] if payload else 1005

    def wait_for_text(self, predicate: object, within: float = 5) -> str:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            for text in self.texts:
                if predicate(text):  # type: ignore[operator]
                    return text
            self._read_available(0.05)
            assert not self.closed, self.texts
        raise TimeoutError(f"no such text frame within {within} s: {self.texts}")

    def send(self, data: bytes) -> bool:
        """False once the server has closed the connection."""
        try:
            self.sock.sendall(data)
        except (ConnectionResetError, BrokenPipeError):
            self.closed = True
        return not self.closed

    def flood(self, frames: bytes, until: float) -> float:
        """Send `frames` again and again, reading what arrives meanwhile as any client
        does, past the server's close frame, until the server closes the TCP connection
        (or `until`); returns when that was."""
        self.sock.setblocking(False)
        pending = memoryview(frames)
        while time.monotonic() < until and not self.closed:
            readable, writable, _ = select.select([self.sock], [self.sock], [], 0.05)
            if readable:
                self._read_available()
            if writable and not self.closed:
                try:
                    sent = self.sock.send(pending)
                except BlockingIOError:
                    sent = 0
                except (ConnectionResetError, BrokenPipeError):
                    self.closed = True
                    break
                pending = pending[sent:] if sent < len(pending) else memoryview(frames)
        return time.monotonic()

    def close(self) -> None:
        self.sock.close()


async def attack(cluster: Cluster, frames: bytes, *, connect: bool) -> tuple[RawWebSocket, float]:
    """A raw socket (CONNECTed as user 5 if asked) that starts a text message and sends
    `frames` in a loop; returns it and the seconds until the server cut it off."""

    def run() -> tuple[RawWebSocket, float]:
        ws = RawWebSocket.open(cluster)
        if connect:
            ws.send(client_frame(OPCODE_TEXT, b'40{"id_user":"5"}', fin=True))
            ws.wait_for_text(lambda text: text.startswith('42["handshake"'))
        ws.send(client_frame(OPCODE_TEXT, b'42["identity-change",', fin=False))
        started = time.monotonic()
        cut = ws.flood(frames, started + FLOOD_S)
        return ws, cut - started

    return await asyncio.to_thread(run)


EMPTY_FRAGMENTS = client_frame(OPCODE_CONTINUATION, fin=False) * 1_000
ONE_BYTE_FRAGMENTS = client_frame(OPCODE_CONTINUATION, b" ", fin=False) * 1_000
# WebSocket pings are frames too (RFC 6455 section 5.5.2), answered by the server itself
PINGS = client_frame(0x9, b"p", fin=True) * 1_000


@pytest.mark.parametrize(
    ("frames", "connect"),
    [(EMPTY_FRAGMENTS, False), (ONE_BYTE_FRAGMENTS, True), (PINGS, True)],
    ids=["empty-before-connect", "one-byte-connected", "pings-connected"],
)
async def test_a_flood_of_fragments_is_cut_off_within_seconds(
    cluster: Cluster, frames: bytes, connect: bool
) -> None:
    room = f"calm-{uuid.uuid4().hex[:8]}"
    first, second = await pair_on_two_workers(cluster, room)
    pids = cluster.children()
    cpu_before = sum(cpu_seconds(pid) for pid in pids)
    try:
        async with Unharmed(cluster, room, [first.sid, second.sid]).watching():
            ws, took = await attack(cluster, frames, connect=connect)
            ws.close()
        cpu = sum(cpu_seconds(pid) for pid in pids) - cpu_before
        print(f"cut off after {took:.2f} s (close {ws.close_code}); workers' CPU {cpu:.2f} s")
        assert took < CUT_OFF_WITHIN_S, f"still open after {took:.1f} s"
        assert cpu < CPU_PER_ATTACK_S, cpu
        if connect:  # a connected socket is told why
            errors = [json.loads(t[2:]) for t in ws.texts if t.startswith('42["error"')]
            assert ["error", {"message": "too many frames: disconnecting"}] in errors, ws.texts
        assert first.payloads("worker-down") == second.payloads("worker-down") == []
    finally:
        await first.close()
        await second.close()


async def test_a_fragmented_message_past_max_payload_is_cut_off_as_it_arrives(
    cluster: Cluster,
) -> None:
    """Fragments of 60,000 bytes: the one that takes the message past SOCKETIO_MAX_PAYLOAD
    bytes ends the connection (WebSocket close 1009) before its payload is read."""

    def run() -> tuple[RawWebSocket, int]:
        ws = RawWebSocket.open(cluster)
        ws.send(client_frame(OPCODE_TEXT, b"42[", fin=False))
        fragment = client_frame(OPCODE_CONTINUATION, b" " * 60_000, fin=False)
        sent = 0
        while sent < 40 and ws.send(fragment):
            sent += 1
            ws._read_available(0.05)
            if ws.close_code is not None or ws.closed:
                break
        return ws, sent

    ws, sent = await asyncio.to_thread(run)
    ws.close()
    assert sent <= MAX_PAYLOAD // 60_000 + 2, sent
    assert ws.close_code in (1009, None), ws.close_code
