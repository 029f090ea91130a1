"""What a WebSocket connection has queued to send, and cutting it off.

Once a client stops reading, the kernel's socket buffers fill and every later frame for it
waits in the Twisted transport (FileDescriptor.dataBuffer after `offset`, plus
`_tempDataBuffer`, twisted/internet/abstract.py) with no bound: Twisted only asks a
registered streaming producer to pause. Autobahn queues nothing of its own here: its
`send_queue` is only used for chopped or synchronous writes, which daphne does not ask for
(autobahn/websocket/protocol.py, sendData). So the transport's buffer is the whole backlog.

Twisted's producer API is not the signal to use: the transport already has a producer,
the HTTPChannel that received the upgrade request (twisted/web/http.py,
HTTPChannel.connectionMade registers it; daphne/http_protocol.py hands the transport to the
WebSocket protocol without unregistering it), and the threshold at which it is paused,
`bufferSize`, is also the size of every read from the socket (twisted/internet/tcp.py).

Not part of the server tuning (rooms.server.tuning): this is safety, always on. It reads
three attributes of Twisted's FileDescriptor, one of them private by name (`_tempDataLen`);
tests/unit/test_backpressure.py checks them against the installed Twisted. Under a server
other than daphne, or a transport that is not a Twisted socket connection, there is nothing
to measure.
"""

from __future__ import annotations

from functools import partial

from daphne.ws_protocol import WebSocketProtocol
from twisted.internet import tcp

# TLS (twisted.protocols.tls) wraps the TCP transport once; leave room for one more wrapper
_MAX_WRAPPERS = 3


class Outgoing:
    """The sending side of one WebSocket's TCP connection."""

    __slots__ = ("_transport",)

    def __init__(self, transport: tcp.Connection) -> None:
        self._transport = transport

    def queued(self) -> int:
        """Bytes written to the connection that the kernel has not taken yet."""
        transport = self._transport
        return len(transport.dataBuffer) - transport.offset + transport._tempDataLen

    def abort(self) -> None:
        """Close the connection at once, dropping what is queued.

        Twisted's abortConnection closes the socket on the next reactor turn but keeps the
        unsent bytes until the transport object is collected, which waits for daphne to
        drop the protocol (its application checker) and for the application to end. They
        are dropped here; the transport will not write again (abortConnection replaces
        its doWrite, twisted/internet/tcp.py, _AbortingMixin).
        """
        transport = self._transport
        transport.abortConnection()  # type: ignore[no-untyped-call]
        transport.dataBuffer = b""
        transport.offset = 0
        transport._tempDataBuffer = []
        transport._tempDataLen = 0


def outgoing(send: object) -> Outgoing | None:
    """The connection behind daphne's ASGI `send` of a WebSocket
    (`partial(Server.handle_reply, protocol)`, daphne/server.py), or None for any other."""
    if not (isinstance(send, partial) and send.args):
        return None
    connection = send.args[0]
    if not isinstance(connection, WebSocketProtocol):
        return None
    transport = connection.transport
    for _ in range(_MAX_WRAPPERS):
        if isinstance(transport, tcp.Connection):  # Unix sockets' too (unix.Server)
            return Outgoing(transport)
        transport = getattr(transport, "transport", None)
    return None
