"""The Engine.IO long-polling transport: a session this worker holds between HTTP requests.

A GET takes what is queued for the client, held until something is (at the latest the
session's next PING); a POST brings the client's packets. One GET and one POST at a time per
session: a second one at once closes the session (400), as the spec's "HTTP long-polling"
says (https://github.com/socketio/engine.io-protocol). A session is this worker's: requests
that land on another worker are forwarded here (rooms.http.polling), and a WebSocket that
upgrades it carries its packets from then on (rooms.socketio.upgrade), on this worker or
through the bus.

Every limit of the WebSocket transport holds: messages and characters per second, maxPayload
per packet and per POST, and what may wait for a client that does not poll (past
SOCKETIO_MAX_BUFFERED_BYTES the session is closed).
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
from dataclasses import dataclass
from typing import Any, Protocol

from django.conf import settings

from rooms.engineio import packets, payload
from rooms.engineio.errors import ProtocolError
from rooms.engineio.packets import CLOSE, MESSAGE, NOOP
from rooms.engineio.session import (
    FORCED_CLOSE,
    LIVE,
    POLLING,
    TRANSPORT_CLOSE,
    WEBSOCKET,
    Session,
    State,
)
from rooms.metrics.series import LIMIT_CLOSES
from rooms.socketio.limits import TokenBucket
from rooms.socketio.transport import Frame, M, Transport

logger = logging.getLogger(__name__)

TEXT = "text/plain; charset=UTF-8"
JSON = "application/json"
MAX_PACKETS_PER_POST = 1000  # a payload is split once; more packets than this are refused


class Sink(Protocol):
    """The WebSocket that probes, then carries, a long-polling session (rooms.socketio.upgrade):
    on this worker, or on another one through the bus."""

    async def write(self, item: payload.Item) -> None:
        """One packet onto the WebSocket, in order."""

    def end(self) -> None:
        """Close the WebSocket: the session is over."""


@dataclass(frozen=True, slots=True)
class Reply:
    """An HTTP answer to one long-polling request."""

    status: int
    body: str
    content_type: str = TEXT


def error(status: int, code: int, message: str) -> Reply:
    """engine.io's error body (`Server.errors`, lib/server.ts)."""
    return Reply(status, f'{{"code":{code},"message":"{message}"}}', JSON)


SESSION_ID_UNKNOWN = error(400, 1, "Session ID unknown")
BAD_REQUEST = error(400, 3, "Bad request")
FORBIDDEN = error(403, 4, "Forbidden")


@functools.cache
def sid_key(secret: str) -> bytes:
    """The key that signs sids, from SECRET_KEY (every worker of a cluster shares it)."""
    return hashlib.sha256(f"identity-playground engine.io sid\0{secret}".encode()).digest()


SESSIONS: dict[str, PollingTransport[Any]] = {}
"""This worker's long-polling sessions (upgraded ones included), by sid."""


class PollingTransport(Transport[M]):
    """One Engine.IO session over long-polling; a subclass is the layer above."""

    def __init__(self, scope: dict[str, Any], query: dict[str, list[str]], sid: str) -> None:
        self.scope, self.query, self.sid_to_be = scope, query, sid
        self.queue: list[payload.Item] = []
        self.queued_bytes = 0
        self.wakeup = asyncio.Event()
        self.getting = self.posting = False
        self.goodbye = CLOSE  # what a GET pending at the close gets: NOOP if the client closed
        self.probing: Sink | None = None  # the WebSocket that may upgrade the session
        self.sink: Sink | None = None  # the WebSocket that did: every packet goes there
        self.relayed = asyncio.Lock()  # relayed packets are taken one after another, in order
        self.relaying: set[asyncio.Task[None]] = set()

    # ---- the handshake -------------------------------------------------------------------

    async def start(self) -> Reply:
        """The handshake GET: the session is opened and its OPEN packet is the answer."""
        if not await self.admit():
            return FORBIDDEN
        session = Session(
            self.sid_to_be,
            ping_interval_ms=settings.SOCKETIO_PING_INTERVAL_MS,
            ping_timeout_ms=settings.SOCKETIO_PING_TIMEOUT_MS,
            max_payload=settings.SOCKETIO_MAX_PAYLOAD,
            upgrades=(WEBSOCKET,),
            transport=POLLING,
        )
        self.session = session
        self.log_fields = {"socket": session.sid}
        self.log = logging.LoggerAdapter(logger, self.log_fields)
        rate, byte_rate = settings.SOCKETIO_FRAME_RATE, settings.SOCKETIO_BYTE_RATE
        self.packet_budget = TokenBucket(rate, burst=2 * rate)
        self.byte_budget = TokenBucket(
            byte_rate, burst=max(settings.SOCKETIO_MAX_PAYLOAD, 2 * byte_rate)
        )
        SESSIONS[session.sid] = self
        open_packet = packets.encode(session.open(asyncio.get_running_loop().time()))
        self.start_timer(session)
        await self.opened()
        return Reply(200, payload.encode([open_packet, *self._take()]))

    # ---- GET and POST --------------------------------------------------------------------

    async def get(self) -> Reply:
        """What is queued for the client, once there is something (or NOOP while upgrading);
        a second GET at once closes the session."""
        session = self.session
        assert session is not None
        refusal = await self._refusal(session, "GET", self.getting)
        if refusal is not None:
            return refusal
        self.getting = True
        try:
            # a PING comes within pingInterval, or the session closes within pingTimeout of
            # one unanswered: the bound is a safety net, never what ends a GET on time
            hold_until = asyncio.get_running_loop().time() + self.longest_hold()
            while not self.queue and session.state is State.OPEN and session.transport == POLLING:
                self.wakeup.clear()
                try:
                    async with asyncio.timeout_at(hold_until):
                        await self.wakeup.wait()
                except TimeoutError:
                    break
            if session.state not in LIVE:  # what was queued (why it closed), then goodbye
                return Reply(200, payload.encode([*self._take(), self.goodbye]))
            if session.state is State.UPGRADING or session.transport != POLLING:
                return Reply(200, NOOP)  # releases the client's GET for the upgrade (spec)
            return Reply(200, payload.encode(self._take()) or NOOP)
        finally:
            self.getting = False

    async def _refusal(self, session: Session, method: str, busy: bool) -> Reply | None:
        """Why a GET or POST is not served, or None: its session is over, upgraded (the old
        transport's requests are refused), or one of the same method is under way (the
        spec's "HTTP long-polling": the session is closed)."""
        if not await self._on_time(session):
            return SESSION_ID_UNKNOWN
        if session.transport != POLLING:
            return BAD_REQUEST
        if busy:
            self.log.info("closing %s: two %ss at once", self._who(), method)
            await self.close_session(f"two {method}s at once")
            return BAD_REQUEST
        return None

    async def _on_time(self, session: Session) -> bool:
        """Whether the session is still live once what was due by now is done: a request
        that comes after the PONG's deadline finds the session closed (as it would be had
        the session's timer run first), not a PING it was too late to answer."""
        await self._act(session.tick(asyncio.get_running_loop().time()))
        return session.state in LIVE

    def longest_hold(self) -> float:
        """Seconds a GET may be held at most (rooms.http.polling waits a little longer)."""
        session = self.session
        assert session is not None
        return (session.ping_interval + session.ping_timeout) / 1000

    async def post(self, body: str) -> Reply:
        """The client's packets, taken in order as WebSocket frames would be."""
        session = self.session
        assert session is not None
        refusal = await self._refusal(session, "POST", self.posting)
        if refusal is not None:
            return refusal
        self.posting = True
        try:
            try:
                items = payload.decode(body, max_packets=MAX_PACKETS_PER_POST)
            except ProtocolError as exc:
                await self.protocol_error(exc, None)
                return BAD_REQUEST
            for item in items:
                if session.state not in LIVE:
                    break  # closed by the client (CLOSE, DISCONNECT): the rest is moot
                if not await self.take(item):
                    return BAD_REQUEST
            return Reply(200, "ok")
        finally:
            self.posting = False

    async def take(self, item: payload.Item) -> bool:
        """One packet from the client (over POST, or the upgrading WebSocket); False when
        it was refused and the session closed for it (a limit, a malformed packet)."""
        session = self.session
        assert session is not None
        if not self.packet_budget.take():
            await self._over_budget("frame")
            return False
        if not self.byte_budget.take(len(item)):
            await self._over_budget("byte")
            return False
        text = item if isinstance(item, str) else None
        try:
            if text is None or text[:1] == MESSAGE:
                message = self.decode_message(text, item if isinstance(item, bytes) else None)
                if message is not None:
                    await self.handle(message)
            else:
                packets.check_frame(text, session.max_payload)
                await self._control(session, packets.decode_control(text))
        except ProtocolError as exc:
            await self.protocol_error(exc, text)
            return session.state in LIVE  # a refused payload the client was told of
        return True

    async def _over_budget(self, unit: str) -> None:
        self.log.info("closing %s: over its %s budget", self._who(), unit)
        LIMIT_CLOSES.labels(f"{unit}_rate").inc()
        await self.farewell(f"too many {unit}s: disconnecting")
        await self.close_session(f"over its {unit} budget")

    # ---- the upgrade to WebSocket -------------------------------------------------------

    def attach(self, websocket: Sink) -> bool:
        """A WebSocket for this session, before its probe; False when the session cannot be
        upgraded (upgraded already, probed by another, or closing)."""
        session = self.session
        if session is None or session.transport != POLLING or session.state is not State.OPEN:
            return False
        if self.probing is not None:
            return False
        self.probing = websocket
        return True

    async def from_websocket(self, websocket: Sink, item: payload.Item) -> None:
        """A packet from an attached WebSocket: PING "probe" (answered on it, and a pending
        GET gets NOOP), UPGRADE (the WebSocket carries the session from now on, starting
        with what was queued for the next GET), then anything a client sends."""
        session = self.session
        if session is None or session.state not in LIVE or websocket is not self.probing:
            return
        if self.sink is websocket:
            await self.take(item)
            return
        try:
            if item == packets.PING + "probe":
                await websocket.write(packets.encode(session.probe("probe")))
                self.wakeup.set()
            elif item == packets.UPGRADE and session.state is State.UPGRADING:
                session.upgrade()
                while self.queue:  # what came meanwhile is queued behind, not written before
                    for queued in self._take():
                        await websocket.write(queued)
                self.sink = websocket
            else:
                raise ProtocolError("a WebSocket for a long-polling session must probe first")
        except ProtocolError as exc:
            self.log.info("refusing an upgrade of %s: %s", self._who(), exc)
            self.detach(websocket)
            websocket.end()

    def in_order(self, websocket: Sink, item: payload.Item) -> None:
        """`from_websocket` for a packet relayed over the bus, after those before it."""

        async def step() -> None:
            async with self.relayed:
                await self.from_websocket(websocket, item)

        task = asyncio.ensure_future(step())
        self.relaying.add(task)  # held until done: the loop keeps weak references
        task.add_done_callback(self.relaying.discard)

    def detach(self, websocket: Sink) -> None:
        """An attached WebSocket went away: before UPGRADE polling goes on; after it, the
        session is over as for any closed transport."""
        if websocket is not self.probing:
            return
        self.probing = None
        session = self.session
        if session is None:
            return
        if self.sink is websocket:
            self.sink = None
            self._closed(TRANSPORT_CLOSE)
        else:
            session.probe_failed()

    # ---- outgoing packets ----------------------------------------------------------------

    def _take(self) -> list[payload.Item]:
        items, self.queue, self.queued_bytes = self.queue, [], 0
        return items

    def _put(self, item: payload.Item) -> None:
        if self.session is None or self.session.state not in LIVE:
            return
        self.queue.append(item)
        self.queued_bytes += len(item)
        self.wakeup.set()
        if self.queued_bytes > settings.SOCKETIO_MAX_BUFFERED_BYTES:
            self._cut_off()

    def _cut_off(self) -> None:
        """A client that does not poll for what it is sent: closed, as a WebSocket client
        that does not read is (rooms.server.backpressure)."""
        limit = settings.SOCKETIO_MAX_BUFFERED_BYTES
        self.log.info("closing %s: outgoing queue over %d bytes", self._who(), limit)
        LIMIT_CLOSES.labels("outgoing_buffer").inc()
        self.queue, self.queued_bytes = [], 0
        self._closed(f"outgoing queue over {limit} bytes")

    def deliver_now(self, frame: Frame) -> bool:
        if self.held is not None or self.sink is not None:
            return False
        if isinstance(frame, str):
            self._put(frame)
        else:
            for part in frame:
                self._put(part)
        return True

    async def send_text(self, text: str) -> None:
        if self.sink is not None:
            await self.sink.write(text)
        else:
            self._put(text)

    async def send_frame(self, frame: Frame) -> None:
        if isinstance(frame, str):
            await self.send_text(frame)
            return
        for part in frame:
            if self.sink is not None:
                await self.sink.write(part)
            else:
                self._put(part)

    # ---- closing -------------------------------------------------------------------------

    @property
    def closing(self) -> bool:
        return self.session is not None and self.session.state not in LIVE

    async def close_session(self, reason: str = FORCED_CLOSE) -> None:
        self._closed(reason)

    def _closed(self, reason: str) -> None:
        """The session ends: a pending GET gets CLOSE (NOOP when the client closed it), the
        layer above forgets it, and its sid names nothing from now on."""
        session = self.session
        if session is None:
            return
        if session.state in LIVE:
            session.close(reason)
        self.goodbye = NOOP if session.close_reason == TRANSPORT_CLOSE else CLOSE
        self.stop_timer()
        self.session_closed()
        self.released()
        SESSIONS.pop(session.sid, None)
        self.wakeup.set()
        websocket, self.probing, self.sink = self.probing, None, None
        if websocket is not None:
            websocket.end()
