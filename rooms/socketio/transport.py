"""What the Socket.IO layer needs of an Engine.IO transport, whichever carries the session.

A transport (rooms.socketio.websocket, rooms.socketio.polling) feeds an Engine.IO session
(rooms.engineio.session) and hands the layer above its messages through hooks, as
Channels' consumers do (`admit`, `opened`, `decode_message`, `handle`, `protocol_error`,
`farewell`, `session_closed`, `released`); the layer above sends with `send_text`,
`send_frame` and `deliver`, and closes with `close_session`. It never learns which
transport it is on (issue 32: python-engineio stands below python-socketio the same way).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, Generic, TypeAlias, TypeVar

from rooms.engineio import packets
from rooms.engineio.errors import ProtocolError
from rooms.engineio.session import (
    FORCED_CLOSE,
    PING_TIMEOUT,
    TRANSPORT_CLOSE,
    CloseConnection,
    Output,
    SendPacket,
    Session,
)
from rooms.metrics.series import LIMIT_CLOSES

M = TypeVar("M")  # what the layer above makes of a message (for Socket.IO, a packet)

Frame: TypeAlias = str | list[str | bytes]
"""One message of the layer above on the wire: a text packet, or a text packet followed by
binary ones (a Socket.IO binary event and its attachments)."""


class Transport(Generic[M]):
    """One Engine.IO session's transport; a subclass of a transport is the layer above,
    filling in the hooks (every one has a default but `decode_message`)."""

    scope: dict[str, Any]
    query: dict[str, list[str]]
    session: Session | None = None  # from the handshake on
    log: logging.LoggerAdapter[logging.Logger]
    log_fields: dict[str, str]
    # Frames the layer above holds back until `release_held` (for Socket.IO, those that
    # arrive before its CONNECT reply has gone out); None while nothing is held.
    held: list[Frame] | None = None
    _timer: asyncio.Task[None] | None = None

    # ---- hooks for the layer above ------------------------------------------------------

    async def admit(self) -> bool:
        """Whether to accept this handshake (it logs its own refusals)."""
        return True

    async def opened(self) -> None:
        """The session is open: its OPEN packet went out, and no message has come in."""

    def decode_message(self, text_data: str | None, bytes_data: bytes | None) -> M | None:
        """What a message (`4...` text, or binary) means, or None while it is incomplete;
        raise ProtocolError for one that cannot be taken."""
        raise NotImplementedError

    async def handle(self, message: M) -> None:
        """A message the peer sent."""

    async def protocol_error(self, error: ProtocolError, text_data: str | None) -> None:
        """A message that could not be taken: the one place errors become replies. By
        default the session is closed, the peer told nothing."""
        self.log.info("closing %s: %s", self._who(), error)
        await self.close_session()

    async def farewell(self, message: str) -> None:
        """Last words to the peer before the server closes its session."""

    def session_closed(self) -> None:
        """The session is closing or closed: drop what hangs on it (may run more than
        once, awaits nothing)."""

    def released(self) -> None:
        """The transport is over: free what it held (may run more than once)."""

    # ---- what the layer above calls -----------------------------------------------------

    def hold(self) -> None:
        """Hold every frame `deliver` is given until `release_held`."""
        self.held = []

    async def release_held(self) -> None:
        """Send the frames held, in order, before any later one."""
        while self.held:
            await self.send_frame(self.held.pop(0))
        self.held = None

    async def deliver(self, frame: Frame) -> None:
        if self.held is not None:
            self.held.append(frame)
            return
        await self.send_frame(frame)

    def deliver_now(self, frame: Frame) -> bool:
        """Whether the frame was sent at once; else `deliver` sends it."""
        return False

    async def send_frame(self, frame: Frame) -> None:
        raise NotImplementedError

    async def send_text(self, text: str) -> None:
        raise NotImplementedError

    async def close_session(self, reason: str = FORCED_CLOSE) -> None:
        raise NotImplementedError

    @property
    def closing(self) -> bool:
        """The session is closing or closed: messages still queued behind that are dropped."""
        raise NotImplementedError

    # ---- the session's packets and clock -------------------------------------------------

    async def _control(self, session: Session, packet: packets.Control) -> None:
        """A packet of Engine.IO's own, for the session."""
        deadline = session.next_deadline
        outputs = session.receive(packet, asyncio.get_running_loop().time())
        if session.next_deadline != deadline:  # a PONG: the next PING is due after it
            self._deadline_moved.set()
        if outputs:
            await self._act(outputs)

    def start_timer(self, session: Session) -> None:
        """One task keeps the session's time (its heartbeat); none is started per packet."""
        self._deadline_moved = asyncio.Event()
        self._timer = asyncio.create_task(self._keep_time(session))

    def stop_timer(self) -> None:
        timer, self._timer = self._timer, None
        if timer is not None and timer is not asyncio.current_task():
            timer.cancel()

    async def _keep_time(self, session: Session) -> None:
        """Tick the session at its next deadline, or as soon as a packet moved it; ends
        once the session has nothing more due (it is closing)."""
        loop = asyncio.get_running_loop()
        moved = self._deadline_moved
        while (deadline := session.next_deadline) is not None:
            moved.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout_at(deadline):
                    await moved.wait()
            await self._act(session.tick(loop.time()))

    async def _act(self, outputs: tuple[Output, ...]) -> None:
        for output in outputs:
            if isinstance(output, SendPacket):
                await self.send_text(packets.encode(output.packet))
            elif isinstance(output, CloseConnection):
                if output.reason != TRANSPORT_CLOSE:  # the peer's own close needs no word
                    self.log.info("closing %s: %s", self._who(), output.reason)
                if output.reason == PING_TIMEOUT:
                    LIMIT_CLOSES.labels("ping_timeout").inc()
                await self.close_session(output.reason)

    def _who(self) -> str:
        """The id this session's log records name."""
        return self.log_fields["socket"]
