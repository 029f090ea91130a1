"""Text frames written straight onto daphne's WebSocket connection.

Through the ASGI path each frame of a fan-out goes Channels' ASGI send -> daphne's
Server.handle_reply -> WebSocketProtocol.handle_reply and serverSend (UTF-8 encoding) ->
autobahn's sendMessage, sendFrame and sendData -> the TCP transport: about half of a
worker's CPU in a 1000-socket fan-out or connect storm (py-spy, bench/profile.sh;
bench/README.md, "Server tuning"). A server's unfragmented, uncompressed text
frame is a 2-10 byte header and the UTF-8 payload; built once per text (a fan-out sends the
same text to every socket in the room) it costs each socket one transport write.

This only happens while autobahn would send the frame exactly so itself: the connection is
open, no message is half sent, no compression was negotiated, nothing waits in autobahn's
send queue and server frames are unmasked (autobahn's defaults under daphne). Otherwise,
and under any server other than daphne, frames take the ASGI path.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from functools import partial

from daphne.ws_protocol import WebSocketProtocol

FrameWriter = Callable[[str], bool]
"""Writes one text frame now; False when this frame must take the ASGI path instead."""

_last: tuple[str, bytes] = ("", b"\x81\x00")
_installed = False


def text_frame(text: str) -> bytes:
    """The wire bytes of a final, unmasked text frame (RFC 6455 5.2). The last one is kept:
    a fan-out asks for the same str object once per socket."""
    global _last
    if _last[0] is text:
        return _last[1]
    payload = text.encode("utf-8")
    length = len(payload)
    if length < 126:
        header = bytes((0x81, length))
    elif length < 1 << 16:
        header = struct.pack("!BBH", 0x81, 126, length)
    else:
        header = struct.pack("!BBQ", 0x81, 127, length)
    frame = header + payload
    _last = (text, frame)
    return frame


def frame_writer(send: object) -> FrameWriter | None:
    """A direct writer for the connection behind daphne's ASGI `send` of a WebSocket
    (`partial(Server.handle_reply, protocol)`), or None for any other `send` and while this
    tuning is not installed."""
    if not (_installed and isinstance(send, partial) and send.args):
        return None
    connection = send.args[0]
    if not isinstance(connection, WebSocketProtocol):
        return None

    def write(text: str) -> bool:
        if (
            connection.state != WebSocketProtocol.STATE_OPEN
            or connection.send_state != WebSocketProtocol.SEND_STATE_GROUND
            or connection._perMessageCompress is not None
            or connection.send_queue
            or connection.maskServerFrames
        ):
            return False
        connection.transport.write(text_frame(text))
        return True

    return write


def install() -> None:
    """From now on `frame_writer` hands out direct writers (idempotent)."""
    global _installed
    _installed = True
