"""Twisted TCP writes gathered per loop turn and sent without a writability round trip.

Twisted's `write()` (and `writeSequence()`, which daphne's HTTP headers take) buffers and
registers the socket for writability, so each frame costs an epoll_ctl to add the writer,
a loop callback, send() and another epoll_ctl to remove it. py-spy profiles of daphne
workers put that path at about half of their CPU in a 1000-receiver fan-out and in connect
storms (bench/README.md, "Server tuning"). Here a write to a connection with nothing
queued is held in Twisted's own buffer and the connection is marked; once per loop turn
every marked connection is flushed with one send(). Frames for the same socket in the
same turn (a connect storm's announcements) still leave in one send(), as Twisted would
send them. Only what the kernel does not take goes back to Twisted's writability path,
which also keeps closing, half-closing and reporting a lost connection.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from twisted.internet import tcp

logger = logging.getLogger(__name__)

_buffered_write: Callable[[Any, bytes], None] = tcp.Connection.write
_buffered_write_sequence: Callable[[Any, list[bytes]], None] = tcp.Connection.writeSequence


def _call_soon(callback: Callable[[], None]) -> None:
    asyncio.get_running_loop().call_soon(callback)


class WriteBatcher:
    def __init__(self, schedule: Callable[[Callable[[], None]], None] = _call_soon) -> None:
        self.schedule = schedule
        self.pending: dict[Any, None] = {}  # connections with held data, in write order

    def write(self, connection: Any, data: bytes) -> None:
        """Hold the data of an idle connection for this turn's flush; else Twisted's write."""
        if (
            not isinstance(data, bytes)
            or not data
            or not connection.connected
            or connection._writeDisconnected
        ):
            _buffered_write(connection, data)  # Twisted's own checks and errors
        elif connection in self.pending:
            self._hold(connection, data)
        elif (
            connection.disconnecting
            or connection._tempDataBuffer
            or connection.offset < len(connection.dataBuffer)
        ):
            _buffered_write(connection, data)  # Twisted's writer already waits for the socket
        else:
            if not self.pending:
                try:
                    self.schedule(self.flush)
                except RuntimeError:  # no running loop (shutting down): Twisted's path
                    _buffered_write(connection, data)
                    return
            self._hold(connection, data)
            self.pending[connection] = None

    def write_sequence(self, connection: Any, sequence: list[bytes]) -> None:
        """Several writes in one (HTTP headers), held together like one write."""
        if all(isinstance(data, bytes) for data in sequence):
            for data in sequence:
                self.write(connection, data)
        else:
            _buffered_write_sequence(connection, sequence)  # Twisted's error, nothing written

    @staticmethod
    def _hold(connection: Any, data: bytes) -> None:
        connection._tempDataBuffer.append(data)
        connection._tempDataLen += len(data)

    def flush(self) -> None:
        """Send what every marked connection holds; leave the rest to Twisted's writer."""
        batch, self.pending = self.pending, {}
        for connection in batch:
            if not connection.connected:
                continue  # lost meanwhile: Twisted drops unsent data too
            if connection.disconnecting or connection._writeDisconnecting:
                connection.startWriting()  # Twisted sends what is held, then closes
                continue
            try:
                failure = connection.doWrite()
            except Exception:
                logger.exception("flushing a connection failed")
                failure = True
            if (
                failure
                or connection._tempDataBuffer
                or connection.offset < len(connection.dataBuffer)
            ):
                connection.startWriting()  # the rest, or the error, through Twisted


batcher = WriteBatcher()


def batched_write(connection: Any, data: bytes) -> None:
    batcher.write(connection, data)


def batched_write_sequence(connection: Any, sequence: list[bytes]) -> None:
    batcher.write_sequence(connection, sequence)


def install() -> None:
    """Make every Twisted TCP connection made from now on batch its writes (idempotent)."""
    tcp.Connection.write = batched_write  # type: ignore[method-assign]
    tcp.Connection.writeSequence = batched_write_sequence  # type: ignore[method-assign]
