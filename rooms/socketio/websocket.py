"""The Engine.IO WebSocket transport, under Channels and daphne.

It feeds an Engine.IO session (rooms.engineio.session) the frames and the clock, and does
what the session answers: the OPEN packet, PINGs, PONGs, closing on a ping timeout or the
peer's CLOSE. Messages go to the layer above through the hooks of rooms.socketio.transport;
that layer never sees the Engine.IO packets.

One WebSocket text frame is one Engine.IO packet, a binary frame one binary message
(https://github.com/socketio/engine.io-protocol, "Transports", "Packet encoding").
Outgoing text frames go straight onto daphne's connection where they can
(rooms/server/ws_frames.py); a client that does not read is cut off
(rooms/server/backpressure.py); incoming frames are counted against a frame and a byte
budget. One task per connection keeps the session's time; none is started per frame.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from typing import Any
from urllib.parse import parse_qs

from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from rooms.engineio import handshake, packets
from rooms.engineio.errors import ProtocolError
from rooms.engineio.packets import MESSAGE
from rooms.engineio.session import (
    FORCED_CLOSE,
    OPEN,
    Session,
)
from rooms.metrics.series import LIMIT_CLOSES
from rooms.server import backpressure, ws_frame_budget
from rooms.server.ws_frames import FrameWriter, frame_writer
from rooms.socketio.dispatch import DirectDispatch
from rooms.socketio.limits import TokenBucket
from rooms.socketio.transport import Frame, M, Transport

logger = logging.getLogger(__name__)

WEBSOCKET_ONLY = frozenset({"websocket"})


def dropped(text: str) -> bool:
    """The FrameWriter of a connection that was cut off: every frame goes nowhere."""
    return True


def new_sid() -> str:
    """20 URL-safe characters, like engine.io's ids."""
    return secrets.token_urlsafe(15)


class WebSocketTransport(DirectDispatch, AsyncWebsocketConsumer, Transport[M]):
    """One WebSocket connection carrying one Engine.IO session."""

    write_frame: FrameWriter | None = None  # under daphne: text frames bypass the ASGI send
    # Under daphne: what the connection has queued to send, checked after every frame
    # against SOCKETIO_MAX_BUFFERED_BYTES (a client that does not read is cut off there).
    outgoing: backpressure.Outgoing | None = None
    max_buffered = 0
    frame_budget: TokenBucket | None = None  # None where the server counts every frame

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        """Whatever ends the instance, its session is closed and what it held released:
        a close runs `disconnect`, but daphne cancels an instance still running
        `application_close_timeout` after its client left, in whatever it was awaiting."""
        try:
            await self.dispatch_from_client(scope, receive, send)
        finally:
            self._release()

    # ---- the handshake and incoming frames ----------------------------------------------

    async def connect(self) -> None:
        self.query = parse_qs(self.scope.get("query_string", b"").decode("latin-1"))
        refusal = handshake.refusal(self.query, WEBSOCKET_ONLY)
        if refusal is not None:
            logger.info("refusing /socket.io/ connection: %s", refusal.message)
            await self.close()
            return
        if not await self.admit():
            await self.close()
            return
        session = Session(
            new_sid(),
            ping_interval_ms=settings.SOCKETIO_PING_INTERVAL_MS,
            ping_timeout_ms=settings.SOCKETIO_PING_TIMEOUT_MS,
            max_payload=settings.SOCKETIO_MAX_PAYLOAD,
        )
        self.session = session
        # what this connection's log records are about (LOG_FORMAT=json shows it as a field)
        self.log_fields = {"socket": session.sid}
        self.log = logging.LoggerAdapter(logger, self.log_fields)
        # characters of frames: one frame of the largest size at once, then the rate
        byte_rate = settings.SOCKETIO_BYTE_RATE
        self.byte_budget = TokenBucket(
            byte_rate, burst=max(settings.SOCKETIO_MAX_PAYLOAD, 2 * byte_rate)
        )
        await self.accept()
        self.write_frame = frame_writer(self.base_send)
        # frames are counted as they arrive where runcluster's workers count them all
        # (rooms.server.ws_frame_budget, fragments and pings included); else here, per message
        if not ws_frame_budget.notify_in_order(self.base_send):
            rate = settings.SOCKETIO_FRAME_RATE
            self.frame_budget = TokenBucket(rate, burst=2 * rate)
        self.outgoing = backpressure.outgoing(self.base_send)
        self.max_buffered = settings.SOCKETIO_MAX_BUFFERED_BYTES
        loop = asyncio.get_running_loop()
        await self.send_text(packets.encode(session.open(loop.time())))
        self.start_timer(session)
        await self.opened()

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        session = self.session
        if session is None or session.state is not OPEN:
            return  # closing: what was queued behind the close goes nowhere (a CONNECT would
            # register a socket on a closed connection)
        if self.frame_budget is not None and not self.frame_budget.take():
            await self._over_budget("frame")
            return
        if not self.byte_budget.take(len(text_data or bytes_data or "")):
            await self._over_budget("byte")
            return
        try:
            if text_data is None or text_data[:1] == MESSAGE:
                message = self.decode_message(text_data, bytes_data)
                if message is not None:
                    await self.handle(message)
            else:
                packets.check_frame(text_data, session.max_payload)
                await self._control(session, packets.decode_control(text_data))
        except ProtocolError as exc:
            await self.protocol_error(exc, text_data)

    async def _over_budget(self, unit: str) -> None:
        """More frames than SOCKETIO_FRAME_RATE allows, or more bytes than
        SOCKETIO_BYTE_RATE (each costs a decode, and messages cost the layer above more):
        the client is told why, then disconnected."""
        self.log.info("closing %s: over its %s budget", self._who(), unit)
        LIMIT_CLOSES.labels(f"{unit}_rate").inc()
        await self.farewell(f"too many {unit}s: disconnecting")
        await self.close_session(f"over its {unit} budget")

    async def websocket_over_budget(self, message: dict[str, Any]) -> None:
        """More WebSocket frames than SOCKETIO_FRAME_RATE allows, counted as they arrive
        (rooms/server/ws_frame_budget.py: fragments and pings included, which never reach
        `receive`); the server reads nothing more from this client."""
        if not self.closing:
            await self._over_budget("frame")

    async def websocket_disconnect(self, message: dict[str, Any]) -> None:
        """Channels' own minus its `aclose_old_connections()` thread hop on every close
        (see rooms.socketio.dispatch; 1.3% of a connect storm's CPU) and its group discards
        (these sockets are in no Channels group)."""
        await self.disconnect(message["code"])
        raise StopConsumer()

    async def disconnect(self, code: int) -> None:
        self._release()

    # ---- outgoing frames ----------------------------------------------------------------

    def deliver_now(self, frame: Frame) -> bool:
        """The frame written at once, unless frames are held or it must take the ASGI path
        (then `deliver` does it)."""
        if not isinstance(frame, str):
            return False  # a binary message's frames go together through `deliver`
        if self.held is None and self.write_frame is not None and self.write_frame(frame):
            if self.outgoing is not None and self.outgoing.queued() > self.max_buffered:
                self.cut_off()
            return True
        return False

    async def send_frame(self, frame: Frame) -> None:
        if isinstance(frame, str):
            await self.send_text(frame)
            return
        if self.write_frame is dropped:  # cut off: frames go nowhere
            return
        # a binary message: its text frame and binary frames through the ASGI send, in order
        for part in frame:
            key = "text" if isinstance(part, str) else "bytes"
            await self.base_send({"type": "websocket.send", key: part})
        if self.outgoing is not None and self.outgoing.queued() > self.max_buffered:
            self.cut_off()

    async def send_text(self, text: str) -> None:
        """One text frame: onto the connection itself where it can (rooms/server/ws_frames.py),
        else straight to the ASGI send (Channels' two send() layers in between add nothing
        here and cost a coroutine each, on every frame of every fan-out)."""
        if self.write_frame is None or not self.write_frame(text):
            await self.base_send({"type": "websocket.send", "text": text})
        if self.outgoing is not None and self.outgoing.queued() > self.max_buffered:
            self.cut_off()

    # ---- closing ------------------------------------------------------------------------

    @property
    def closing(self) -> bool:
        """The session is closing or closed: frames still queued behind that are dropped."""
        return self.session is not None and self.session.state is not OPEN

    async def close_session(self, reason: str = FORCED_CLOSE) -> None:
        """Close the session, then its WebSocket (the WebSocket close says it: no CLOSE
        packet)."""
        if self.session is not None:
            self.session.close(reason)
        self.stop_timer()
        self.session_closed()
        await self.close()

    def cut_off(self) -> None:
        """Close a connection whose client does not read what it is sent: its frames would
        wait in this worker without bound (issue 19). The session closes like any other; the
        connection is aborted, not closed with a WebSocket close frame, which would only
        queue behind the rest."""
        if self.outgoing is None:
            return
        reason = f"outgoing buffer over {self.max_buffered} bytes"
        self.log.info("closing %s: %s", self._who(), reason)
        LIMIT_CLOSES.labels("outgoing_buffer").inc()
        self.outgoing.abort()
        self.outgoing = None
        if self.session is not None:
            self.session.close(reason)
        self.write_frame = dropped  # frames still handed to this connection go nowhere
        self.stop_timer()
        self.session_closed()

    def _release(self) -> None:
        """The layer above's hold first, then the session: neither waits on anything."""
        self.released()
        if self.session is not None:
            self.session.transport_closed()
        self.stop_timer()
        self.session_closed()
