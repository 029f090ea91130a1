"""Batched Twisted writes: one send per connection per loop turn, Twisted's path for the rest."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Iterator

import pytest
from twisted.internet import tcp
from twisted.internet.testing import MemoryReactor

from rooms.server import tcp_writes


class Turns:
    """Stands in for the event loop: collects what was scheduled, runs it on demand."""

    def __init__(self) -> None:
        self.scheduled: list[Callable[[], None]] = []

    def __call__(self, callback: Callable[[], None]) -> None:
        self.scheduled.append(callback)

    def run(self) -> None:
        ready, self.scheduled = self.scheduled, []
        for callback in ready:
            callback()


@pytest.fixture
def turns() -> Turns:
    return Turns()


@pytest.fixture
def batcher(turns: Turns) -> tcp_writes.WriteBatcher:
    return tcp_writes.WriteBatcher(schedule=turns)


@pytest.fixture
def pair() -> Iterator[tuple[tcp.Connection, socket.socket, MemoryReactor]]:
    """A Twisted TCP connection over one end of a socket pair; the test holds the other."""
    ours, peer = socket.socketpair()
    ours.setblocking(False)
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    peer.settimeout(1)
    reactor = MemoryReactor()
    connection = tcp.Connection(ours, None, reactor)
    connection.connected = True
    yield connection, peer, reactor
    ours.close()
    peer.close()


def nothing_arrived(peer: socket.socket) -> bool:
    peer.setblocking(False)
    try:
        peer.recv(1)
    except BlockingIOError:
        return True
    finally:
        peer.settimeout(1)
    return False


def test_writes_of_one_turn_leave_together_without_a_writer(pair, batcher, turns):
    connection, peer, reactor = pair
    batcher.write(connection, b"one,")
    batcher.write(connection, b"two")
    assert nothing_arrived(peer)  # held until the turn's flush
    assert len(turns.scheduled) == 1  # one flush per turn, however many writes
    turns.run()
    assert peer.recv(100) == b"one,two"
    assert reactor.getWriters() == []  # no writability registration at all


def test_each_connection_is_flushed_once_per_turn(batcher, turns):
    pairs = [socket.socketpair() for _ in range(3)]
    connections = []
    for ours, _ in pairs:
        ours.setblocking(False)
        connection = tcp.Connection(ours, None, MemoryReactor())
        connection.connected = True
        connections.append(connection)
    for index, connection in enumerate(connections):
        batcher.write(connection, f"frame {index}".encode())
    turns.run()
    assert [peer.recv(100) for _, peer in pairs] == [b"frame 0", b"frame 1", b"frame 2"]
    for ours, peer in pairs:
        ours.close()
        peer.close()


def test_what_the_kernel_does_not_take_goes_to_twisted_in_order(pair, batcher, turns):
    connection, peer, reactor = pair
    big = bytes(range(256)) * 4096  # 1 MiB: more than the socket buffers hold
    batcher.write(connection, big)
    turns.run()
    assert reactor.getWriters() == [connection]
    batcher.write(connection, b"after")  # behind Twisted's queue, never ahead of it
    assert turns.scheduled == []
    received = b""
    while len(received) < len(big) + 5:
        connection.doWrite()
        received += peer.recv(65536)
    assert received == big + b"after"
    assert reactor.getWriters() == []


def test_a_lost_peer_is_left_to_twisted_to_report(pair, batcher, turns):
    connection, peer, reactor = pair
    peer.close()
    batcher.write(connection, b"into the void")
    turns.run()
    assert reactor.getWriters() == [connection]  # its doWrite finds the connection lost
    assert connection.doWrite() is not None


def test_a_connection_lost_before_the_flush_is_skipped(pair, batcher, turns):
    connection, peer, reactor = pair
    batcher.write(connection, b"late")
    connection.connected = False
    turns.run()
    assert nothing_arrived(peer)
    assert reactor.getWriters() == []


def test_a_connection_closing_before_the_flush_is_flushed_by_twisted(pair, batcher, turns):
    connection, peer, reactor = pair
    batcher.write(connection, b"last words")
    connection.disconnecting = True
    turns.run()
    assert reactor.getWriters() == [connection]  # Twisted sends them, then closes
    connection.doWrite()
    assert peer.recv(100) == b"last words"


def test_nothing_is_written_after_the_write_side_is_closed(pair, batcher, turns):
    connection, peer, reactor = pair
    connection._writeDisconnected = True
    batcher.write(connection, b"late")
    turns.run()
    assert nothing_arrived(peer)
    assert reactor.getWriters() == [] and turns.scheduled == []


def test_without_a_running_loop_writes_take_twisteds_path(pair):
    connection, peer, reactor = pair

    def no_loop(_callback: Callable[[], None]) -> None:
        raise RuntimeError("no running event loop")

    tcp_writes.WriteBatcher(schedule=no_loop).write(connection, b"at shutdown")
    assert reactor.getWriters() == [connection]
    connection.doWrite()
    assert peer.recv(100) == b"at shutdown"


def test_a_sequence_is_held_with_the_writes_that_follow(pair, batcher, turns):
    """HTTP headers (writeSequence) and the body (write) leave in one send, no writer."""
    connection, peer, reactor = pair
    batcher.write_sequence(connection, [b"HTTP/1.1 200 OK\r\n", b"\r\n"])
    batcher.write(connection, b"body")
    turns.run()
    assert peer.recv(100) == b"HTTP/1.1 200 OK\r\n\r\nbody"
    assert reactor.getWriters() == []


def test_a_sequence_with_text_in_it_is_refused_whole(pair, batcher, turns):
    connection, peer, reactor = pair
    with pytest.raises(TypeError):
        batcher.write_sequence(connection, [b"fine", "not bytes"])
    assert connection._tempDataBuffer == [] and turns.scheduled == []


@pytest.fixture
def as_shipped(monkeypatch: pytest.MonkeyPatch) -> None:
    """Twisted's own writes on tcp.Connection, restored after the test."""
    monkeypatch.setattr(tcp.Connection, "write", tcp_writes._buffered_write)
    monkeypatch.setattr(tcp.Connection, "writeSequence", tcp_writes._buffered_write_sequence)


async def test_installed_a_connections_writes_leave_at_the_end_of_the_turn(
    pair, as_shipped: None
) -> None:
    """After install, any TCP connection's write() and writeSequence() (what daphne and
    autobahn call) are sent together once the event loop's turn ends, with no writability
    registration."""
    connection, peer, reactor = pair
    tcp_writes.install()
    connection.writeSequence([b"HTTP/1.1 200 OK\r\n", b"\r\n"])
    connection.write(b"body")
    assert nothing_arrived(peer)
    await asyncio.sleep(0)
    assert peer.recv(100) == b"HTTP/1.1 200 OK\r\n\r\nbody"
    assert reactor.getWriters() == []


async def test_as_shipped_twisted_waits_for_writability(pair, as_shipped: None) -> None:
    """What install replaces: Twisted registers the connection for writability and sends
    only when its reactor calls doWrite."""
    connection, peer, reactor = pair
    connection.write(b"body")
    await asyncio.sleep(0)
    assert nothing_arrived(peer)
    assert reactor.getWriters() == [connection]
    connection.doWrite()
    assert peer.recv(100) == b"body"
