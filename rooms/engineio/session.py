"""One Engine.IO v4 session as a sans-I/O state machine: packets and the clock in, values out.

Its states and every transition between them are in `TRANSITIONS`, in one place (as h11's
`_state.py` and wsproto's `ConnectionState` keep theirs). A transport feeds it what happened
(`open`, `receive`, `tick`, `close`, `transport_closed`) with the time `now` on its own clock,
and acts on what it answers: `SendPacket` (write this packet) and `CloseConnection` (close
the connection at once, for this reason). The session never sleeps or does I/O; its heartbeat is
two deadlines, and `next_deadline` says when the transport should `tick` it next (as
aioquic's `get_timer()` does), to be read again after each input.

Messages are not fed in: a transport passes them to the layer above itself while `state` is
OPEN (one call fewer for every message).

Spec: https://github.com/socketio/engine.io-protocol (v4), "Handshake", "Heartbeat".
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TypeAlias

from rooms.engineio.errors import ProtocolError
from rooms.engineio.packets import Close, Control, Open, Ping, Pong


class State(enum.Enum):
    OPENING = "opening"  # created; its OPEN packet has not gone out
    OPEN = "open"  # OPEN sent: messages flow both ways and the server pings
    UPGRADING = "upgrading"  # long-polling, a WebSocket probe answered: polling is paused
    CLOSING = "closing"  # closed by either side; the transport has still to close its connection
    CLOSED = "closed"  # the connection is gone


class Trigger(enum.Enum):
    OPEN = "open"  # the transport sends the OPEN packet
    CLOSE = "close"  # ping timeout, the peer's CLOSE packet, or the server's own decision
    TRANSPORT_CLOSED = "transport closed"  # the connection ended, whoever ended it
    PROBE = "probe"  # a WebSocket sent PING "probe" for a long-polling session
    UPGRADE = "upgrade"  # that WebSocket sent UPGRADE: it carries the session from now on
    PROBE_FAILED = "probe failed"  # that WebSocket went away before UPGRADE


# Every state change there is; the spec's "Upgrade" is OPEN -> UPGRADING -> OPEN, on the
# WebSocket's transport from then on.
TRANSITIONS: dict[State, dict[Trigger, State]] = {
    State.OPENING: {
        Trigger.OPEN: State.OPEN,
        Trigger.CLOSE: State.CLOSING,
        Trigger.TRANSPORT_CLOSED: State.CLOSED,
    },
    State.OPEN: {
        Trigger.CLOSE: State.CLOSING,
        Trigger.TRANSPORT_CLOSED: State.CLOSED,
        Trigger.PROBE: State.UPGRADING,
    },
    State.UPGRADING: {
        Trigger.UPGRADE: State.OPEN,
        Trigger.PROBE_FAILED: State.OPEN,
        Trigger.CLOSE: State.CLOSING,
        Trigger.TRANSPORT_CLOSED: State.CLOSED,
    },
    State.CLOSING: {Trigger.CLOSE: State.CLOSING, Trigger.TRANSPORT_CLOSED: State.CLOSED},
    State.CLOSED: {Trigger.CLOSE: State.CLOSED, Trigger.TRANSPORT_CLOSED: State.CLOSED},
}

OPEN = State.OPEN  # a module global: `State.OPEN` is a slower lookup, and this is read per frame
LIVE = frozenset((State.OPEN, State.UPGRADING))  # messages flow and the heartbeat runs

POLLING = "polling"
WEBSOCKET = "websocket"

# Why a session closed, in the words of the reference server (engine.io's `close` reasons).
PING_TIMEOUT = "ping timeout"  # no PONG within pingTimeout of a PING
TRANSPORT_CLOSE = "transport close"  # the peer closed: a CLOSE packet, or its connection ended
FORCED_CLOSE = "forced close"  # the server closed it


class InvalidTransition(RuntimeError):
    """The transport fed an input its session's state does not allow: a bug on our side,
    never the peer's doing (that is a ProtocolError)."""


@dataclass(frozen=True, slots=True)
class SendPacket:
    """Write this packet to the peer."""

    packet: Control


@dataclass(frozen=True, slots=True)
class CloseConnection:
    """Close the connection at once; the session is CLOSING."""

    reason: str


Output: TypeAlias = SendPacket | CloseConnection
NOTHING: tuple[Output, ...] = ()


class Session:
    """An Engine.IO session: its state, its heartbeat deadlines, why it closed.

    Times are seconds on the transport's monotonic clock; intervals are given in ms, as
    the OPEN packet carries them.
    """

    __slots__ = (
        "sid",
        "ping_interval",
        "ping_timeout",
        "max_payload",
        "upgrades",
        "transport",
        "state",
        "ping_due_at",
        "pong_due_by",
        "close_reason",
    )

    def __init__(
        self,
        sid: str,
        *,
        ping_interval_ms: int,
        ping_timeout_ms: int,
        max_payload: int,
        upgrades: tuple[str, ...] = (),
        transport: str = WEBSOCKET,
    ) -> None:
        self.sid = sid
        self.transport = transport
        self.ping_interval = ping_interval_ms
        self.ping_timeout = ping_timeout_ms
        self.max_payload = max_payload
        self.upgrades = upgrades
        self.state = State.OPENING
        self.ping_due_at: float | None = None  # when the next PING goes out
        self.pong_due_by: float | None = None  # while a PING waits for its PONG: until when
        self.close_reason: str | None = None  # the first reason given, once CLOSING

    def _transition(self, trigger: Trigger) -> None:
        try:
            self.state = TRANSITIONS[self.state][trigger]
        except KeyError:
            raise InvalidTransition(f"{trigger.value} in state {self.state.value}") from None

    @property
    def next_deadline(self) -> float | None:
        """When `tick` has something to do next, or None (nothing until another input)."""
        if self.state not in LIVE:
            return None
        return self.pong_due_by if self.pong_due_by is not None else self.ping_due_at

    def open(self, now: float) -> Open:
        """The OPEN packet to send first; the first PING is due pingInterval later."""
        self._transition(Trigger.OPEN)
        self.ping_due_at = now + self.ping_interval / 1000
        return Open(
            self.sid, self.ping_interval, self.ping_timeout, self.max_payload, self.upgrades
        )

    def receive(self, packet: Control, now: float) -> tuple[Output, ...]:
        """A packet of Engine.IO's own from the peer; ignored unless the session is OPEN.
        Raises ProtocolError for one a client never sends (OPEN)."""
        if self.state not in LIVE:
            return NOTHING
        match packet:
            case Pong():
                # The PONG to the PING out, whatever its data; an unasked one changes nothing.
                if self.pong_due_by is not None:
                    self.pong_due_by = None
                    self.ping_due_at = now + self.ping_interval / 1000
                return NOTHING
            case Ping(data):
                return (SendPacket(Pong(data)),)  # answered in kind, as the upgrade's "2probe" is
            case Close():
                self.close(TRANSPORT_CLOSE)
                return (CloseConnection(TRANSPORT_CLOSE),)
        raise ProtocolError(f"unexpected {type(packet).__name__} packet")

    def tick(self, now: float) -> tuple[Output, ...]:
        """What the clock makes due by `now`: a PING, or a close for the PONG that did not
        come within pingTimeout of it."""
        if self.state not in LIVE:
            return NOTHING
        if self.pong_due_by is not None:
            if now < self.pong_due_by:
                return NOTHING
            self.close(PING_TIMEOUT)
            return (CloseConnection(PING_TIMEOUT),)
        if self.ping_due_at is None or now < self.ping_due_at:
            return NOTHING
        # from when the PING was due, not when this tick came: a late tick (a busy loop)
        # does not give the peer longer than pingInterval + pingTimeout
        self.pong_due_by = self.ping_due_at + self.ping_timeout / 1000
        self.ping_due_at = None
        return (SendPacket(Ping()),)

    def probe(self, data: str) -> Pong:
        """A WebSocket for this long-polling session sent PING `data` ("probe"): the PONG
        to answer on it. Polling is paused (a pending GET gets NOOP) until `upgrade`.
        ProtocolError when the session cannot be upgraded (not polling, or already
        probed)."""
        if self.transport != POLLING or self.state is not OPEN or data != "probe":
            raise ProtocolError("no upgrade to probe for this session")
        self._transition(Trigger.PROBE)
        return Pong(data)

    def upgrade(self) -> None:
        """The probing WebSocket sent UPGRADE: the session is carried by it from now on."""
        self._transition(Trigger.UPGRADE)
        self.transport = WEBSOCKET

    def probe_failed(self) -> None:
        """The probing WebSocket went away before UPGRADE: polling goes on."""
        if self.state is State.UPGRADING:
            self._transition(Trigger.PROBE_FAILED)

    def close(self, reason: str = FORCED_CLOSE) -> None:
        """The session closes (the transport closes its connection); the first reason stands,
        and nothing more is received or due."""
        self._transition(Trigger.CLOSE)
        if self.close_reason is None:
            self.close_reason = reason
        self.ping_due_at = self.pong_due_by = None

    def transport_closed(self) -> None:
        """The connection is gone, whoever closed it."""
        self._transition(Trigger.TRANSPORT_CLOSED)
        if self.close_reason is None:
            self.close_reason = TRANSPORT_CLOSE
        self.ping_due_at = self.pong_due_by = None
