"""The Engine.IO long-polling transport: a session this worker holds between HTTP requests.

A GET takes what is queued for the client, held until something is (at the latest the
session's next PING); a POST brings the client's packets. One GET and one POST at a time per
session: a second one at once closes the session (400), as the spec's "HTTP long-polling"
says (https://github.com/socketio/engine.io-protocol). A session is this worker's: requests
that land on another worker are forwarded here (rooms.http.polling), and a WebSocket that
upgrades it carries its packets from then on (rooms.socketio.upgrade): on this worker, or on
another one that the session is handed over to first (`hand_over`, `ship`; there `arrive`,
`took_over`), or, on a channel layer other than the bus's, through the bus.

Every limit of the WebSocket transport holds: messages and characters per second, maxPayload
per packet and per POST, and what may wait for a client that does not poll (past
SOCKETIO_MAX_BUFFERED_BYTES the session is closed).
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
from collections.abc import Callable
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

MOVED: dict[str, tuple[str, float]] = {}
"""Sessions of this worker handed over to another at an upgrade (rooms.socketio.upgrade):
sid -> (the procid holding it now, until when its requests are forwarded there)."""


ARRIVING: dict[str, asyncio.Future[None]] = {}
"""Sessions being handed over to this worker (rooms.socketio.upgrade), by sid: done once
in SESSIONS, or failed."""


async def session_here(sid: str, within: float = 10.0) -> PollingTransport[Any] | None:
    """This worker's session `sid`; one being handed over to it is waited for (its old
    worker may forward a request the moment it let go of it)."""
    arriving = ARRIVING.get(sid)
    if sid not in SESSIONS and arriving is not None:
        await asyncio.wait({arriving}, timeout=within)
    return SESSIONS.get(sid)


def moved_to(sid: str) -> str | None:
    """The worker a session of this one was handed to, for pingInterval + pingTimeout."""
    moved = MOVED.get(sid)
    if moved is None:
        return None
    now = asyncio.get_running_loop().time()
    if moved[1] < now:
        for stale in [s for s, (_procid, until) in MOVED.items() if until < now]:
            del MOVED[stale]
        return None
    return moved[0]


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
        # the handover to another worker (rooms.socketio.upgrade): the procid it goes to,
        # what to call if the session ends meanwhile, and whether it is gone there
        self.moving_to: str | None = None
        self.move_aborted: Callable[[], None] | None = None
        self.moved = False
        # what the client sent while the session was moving: taken by the worker taking it
        self.deferred: list[payload.Item] = []
        self.arrived = False  # handed over to this worker by another

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
        self._set_up(session)
        SESSIONS[session.sid] = self
        open_packet = packets.encode(session.open(asyncio.get_running_loop().time()))
        self.start_timer(session)
        await self.opened()
        return Reply(200, payload.encode([open_packet, *self._take()]))

    def _set_up(self, session: Session) -> None:
        self.session = session
        self.log_fields = {"socket": session.sid}
        self.log = logging.LoggerAdapter(logger, self.log_fields)
        rate, byte_rate = settings.SOCKETIO_FRAME_RATE, settings.SOCKETIO_BYTE_RATE
        self.packet_budget = TokenBucket(rate, burst=2 * rate)
        self.byte_budget = TokenBucket(
            byte_rate, burst=max(settings.SOCKETIO_MAX_PAYLOAD, 2 * byte_rate)
        )

    # ---- the handover to another worker (rooms.socketio.upgrade) --------------------------

    def handover_refusal(self) -> str | None:
        """Why this session cannot be handed to another worker at this point, or None."""
        session = self.session
        if session is None or session.state is not State.OPEN or session.transport != POLLING:
            return "not an open long-polling session"
        if self.probing is not None or self.moving_to is not None:
            return "an upgrade is under way already"
        if self.posting:
            return "a POST is being taken"
        return self.layer_handover_refusal()

    def layer_handover_refusal(self) -> str | None:
        """Hook: why the layer above cannot hand its state over now, or None."""
        return None

    def handover_state(self) -> dict[str, Any]:
        """Hook: the layer above's state for the worker taking the session over."""
        return {}

    async def take_over(self, state: dict[str, Any]) -> None:
        """Hook: the layer above rebuilt from `handover_state`, on the worker taking over."""

    def moved_away(self) -> None:
        """Hook: the layer above lets go of a session another worker holds now."""

    def handover_failed(self, left: list[str] | None) -> None:
        """Hook: the handover to this worker failed, and the session is closed next;
        `left`: the rooms the old worker had given the socket up in, when it said."""

    def hand_over(self, procid: str) -> dict[str, Any]:
        """The session goes to worker `procid`: its state, and from now on a GET answers
        NOOP, and what is delivered queues up for that worker (POSTs are still taken)."""
        session = self.session
        assert session is not None
        state = {
            "sid": session.sid,
            "ping_interval": session.ping_interval,
            "ping_timeout": session.ping_timeout,
            "max_payload": session.max_payload,
            # the client expects a PING within pingInterval of the last one, whoever sends it
            "ping_in": session.next_ping_in_ms(asyncio.get_running_loop().time()),
            **self.handover_state(),
        }
        self.moving_to = procid
        self.stop_timer()  # the heartbeat is the taker's from now on
        self.wakeup.set()  # a pending GET answers NOOP
        return state

    async def ship(self) -> list[payload.Item]:
        """What is queued for the client, taken at the end of the handover (after any POST
        being taken); the session is forgotten here, and its requests forwarded to the
        worker that has it for pingInterval + pingTimeout."""
        session = self.session
        assert session is not None and self.moving_to is not None
        for _ in range(1000):  # a POST taken meanwhile: its replies are queued too
            if not self.posting:
                break
            await asyncio.sleep(0.01)
        items = self._take()
        self.moved = True
        SESSIONS.pop(session.sid, None)
        until = asyncio.get_running_loop().time() + self.longest_hold()
        MOVED[session.sid] = (self.moving_to, until)
        self.moved_away()
        return items

    async def arrive(self, state: dict[str, Any], websocket: Sink) -> None:
        """The session rebuilt on the worker taking it over, with `websocket` probing it,
        from the state `hand_over` gave; `took_over` completes it."""
        session = Session(
            state["sid"],
            ping_interval_ms=state["ping_interval"],
            ping_timeout_ms=state["ping_timeout"],
            max_payload=state["max_payload"],
            upgrades=(WEBSOCKET,),
            transport=POLLING,
        )
        self._set_up(session)
        session.open(asyncio.get_running_loop().time(), state["ping_in"])
        self.start_timer(session)
        self.arrived = True
        self.probing = websocket
        await self.take_over(state)

    def arrived_frames(self, served: list[str]) -> list[Frame]:
        """Hook: what the layer above held back during the handover, to send after what the
        old worker had queued; `served` are the multi-room events that worker delivered."""
        return []

    def took_over(self, items: list[payload.Item], served: list[str]) -> payload.Item:
        """What the session's old worker had queued goes first, then what came here since;
        the session answers its requests here from now on. Returns the PONG "probe" to
        write (ProtocolError when the session closed meanwhile)."""
        session = self.session
        assert session is not None
        here = self._take()  # a PING of this worker's heartbeat, if one was due
        for item in items:
            self._put(item)
        for frame in self.arrived_frames(served):
            for part in [frame] if isinstance(frame, str) else frame:
                self._put(part)
        for item in here:
            self._put(item)
        return packets.encode(session.probe("probe"))

    async def land(self, deferred: list[payload.Item]) -> None:
        """The end of a handover here: once the layer above is settled, what the client
        sent while the session was moving is taken, in order, before any later request
        (those wait for the session to be in SESSIONS)."""
        session = self.session
        assert session is not None
        await self.settled()
        for item in deferred:
            if session.state not in LIVE or not await self.take(item):
                return
        if session.state in LIVE:
            SESSIONS[session.sid] = self

    async def settled(self) -> None:
        """Hook: until the layer above takes what the client sent (a socket's rooms are
        all cut over to this worker)."""

    # ---- GET and POST --------------------------------------------------------------------

    async def get(self) -> Reply:
        """What is queued for the client, once there is something (or NOOP while upgrading);
        a second GET at once closes the session."""
        session = self.session
        assert session is not None
        refusal = await self._refusal(session, "GET", self.getting)
        if refusal is not None:
            return refusal
        if self.moving_to is not None:
            return Reply(200, NOOP)  # handed to another worker, which answers from now on
        self.getting = True
        try:
            # a PING comes within pingInterval, or the session closes within pingTimeout of
            # one unanswered: the bound is a safety net, never what ends a GET on time
            hold_until = asyncio.get_running_loop().time() + self.longest_hold()
            while (
                not self.queue
                and session.state is State.OPEN
                and session.transport == POLLING
                and self.moving_to is None
            ):
                self.wakeup.clear()
                try:
                    async with asyncio.timeout_at(hold_until):
                        await self.wakeup.wait()
                except TimeoutError:
                    break
            if session.state not in LIVE:  # what was queued (why it closed), then goodbye
                return Reply(200, payload.encode([*self._take(), self.goodbye]))
            if (
                session.state is State.UPGRADING
                or session.transport != POLLING
                or self.moving_to is not None
            ):
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
        if self.moving_to is None:  # else the heartbeat is the taker's
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
        if self.moving_to is not None:  # the worker taking the session takes it
            self.deferred.append(item)
            return True
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

    def upgradable(self) -> bool:
        """Whether a WebSocket may probe this session (not upgraded already, probed by
        another, being handed over to another worker, or closing)."""
        session = self.session
        if session is None or session.transport != POLLING or session.state is not State.OPEN:
            return False
        return self.probing is None and self.moving_to is None

    def attach(self, websocket: Sink) -> bool:
        """A WebSocket for this session, before its probe; False when it is not
        `upgradable`."""
        if not self.upgradable():
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
        elif self.arrived:
            # handed over for this WebSocket, reached over polling only through the old
            # worker's forwarding, which ends: closed, the client opens a new session
            self._closed(TRANSPORT_CLOSE)
        else:
            session.probe_failed()

    # ---- outgoing packets ----------------------------------------------------------------

    def _take(self) -> list[payload.Item]:
        items, self.queue, self.queued_bytes = self.queue, [], 0
        return items

    def _put(self, item: payload.Item) -> None:
        if self.session is None or self.session.state not in LIVE or self.moved:
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
        if session is None or self.moved:
            return
        if self.moving_to is not None and self.move_aborted is not None:
            aborted, self.move_aborted = self.move_aborted, None
            aborted()  # the worker taking it over is told
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
