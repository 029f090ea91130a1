"""Engine.IO v4 packets as one WebSocket text frame each: `<type digit><data>`.

Sans-I/O, like h11/wsproto: frozen dataclasses in, text out; anything the peer got wrong
raises `ProtocolError`, so the caller can close that one connection and nothing else.
Spec: https://github.com/socketio/engine.io-protocol, "Packet encoding" (WebSocket).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeAlias

from rooms.engineio import bounded_json
from rooms.engineio.errors import ProtocolError

OPEN = "0"
CLOSE = "1"
PING = "2"
PONG = "3"
MESSAGE = "4"  # what the layer above sends: for Socket.IO, `4<Socket.IO packet>`
UPGRADE = "5"
NOOP = "6"


@dataclass(frozen=True, slots=True)
class Open:
    """OPEN (0): the server's handshake, the first packet of a session."""

    sid: str
    ping_interval: int  # ms
    ping_timeout: int  # ms
    max_payload: int
    upgrades: tuple[str, ...] = ()  # WebSocket only: nothing to upgrade to


@dataclass(frozen=True, slots=True)
class Close:
    """CLOSE (1): the transport is about to be closed."""


@dataclass(frozen=True, slots=True)
class Ping:
    """PING (2); in v4 the server sends it and the client answers with a PONG."""

    data: str = ""


@dataclass(frozen=True, slots=True)
class Pong:
    """PONG (3), echoing the PING's data."""

    data: str = ""


@dataclass(frozen=True, slots=True)
class Message:
    """MESSAGE (4): a text message of the layer above."""

    data: str


Control: TypeAlias = Open | Close | Ping | Pong
"""The packets of Engine.IO itself: every packet but a message."""
Packet: TypeAlias = Control | Message


def check_frame(frame: str, max_payload: int) -> None:
    """Refuse an empty frame, or one longer than the session's maxPayload."""
    if not frame:
        raise ProtocolError("empty frame")
    if len(frame) > max_payload:
        raise ProtocolError(f"frame of {len(frame)} characters exceeds maxPayload {max_payload}")


def decode(frame: str, *, max_payload: int = 1_000_000) -> Packet:
    """Decode one WebSocket text frame; raise ProtocolError, and only that, for any bad input."""
    check_frame(frame, max_payload)
    if frame[0] == MESSAGE:
        return Message(frame[1:])
    return decode_control(frame)


def decode_control(frame: str) -> Control:
    """Decode a frame that `check_frame` passed and that is no message (the layer above
    decodes those itself, from the whole frame)."""
    kind = frame[0]
    if kind == PING:
        return Ping(frame[1:])
    if kind == PONG:
        return Pong(frame[1:])
    if kind == CLOSE:
        if len(frame) > 1:
            raise ProtocolError("CLOSE carries no data")
        return Close()
    if kind == OPEN:
        return _decode_open(frame[1:])
    if kind in (UPGRADE, NOOP):
        raise ProtocolError("Engine.IO UPGRADE/NOOP packets belong to the polling transport")
    if kind == MESSAGE:
        raise ValueError("a message is the layer above's to decode")
    raise ProtocolError(f"unknown Engine.IO packet type {kind!r}")


def _decode_open(text: str) -> Open:
    data = bounded_json.parse(text) if text else None
    if not isinstance(data, dict):
        raise ProtocolError("OPEN payload must be a JSON object")
    sid, upgrades = data.get("sid"), data.get("upgrades")
    if (
        not isinstance(sid, str)
        or not isinstance(upgrades, list)
        or not all(isinstance(name, str) for name in upgrades)
    ):
        raise ProtocolError("OPEN needs a string sid and a list of upgrades")
    return Open(
        sid,
        _positive_int(data, "pingInterval"),
        _positive_int(data, "pingTimeout"),
        _positive_int(data, "maxPayload"),
        tuple(upgrades),
    )


def _positive_int(data: dict[str, Any], key: str) -> int:
    value = data.get(key)
    if type(value) is not int or value <= 0:  # bool is an int subclass; JSON true is not a number
        raise ProtocolError(f"OPEN needs a positive integer {key}")
    return value


def encode(packet: Packet) -> str:
    """The exact text frame of one packet."""
    match packet:
        case Message(data):
            return MESSAGE + data
        case Ping(data):
            return PING + data
        case Pong(data):
            return PONG + data
        case Close():
            return CLOSE
        case Open(sid, ping_interval, ping_timeout, max_payload, upgrades):
            return OPEN + bounded_json.dumps(
                {
                    "sid": sid,
                    "upgrades": list(upgrades),
                    "pingInterval": ping_interval,
                    "pingTimeout": ping_timeout,
                    "maxPayload": max_payload,
                }
            )
    raise TypeError(f"not an Engine.IO packet: {packet!r}")
