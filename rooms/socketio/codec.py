"""Socket.IO v5 wire format inside Engine.IO v4 messages, for the WebSocket transport.

Sans-I/O, like h11/wsproto: frozen dataclasses in, text frames out. Anything the peer got wrong
raises `ProtocolError`, so the caller can close that one connection and nothing else.
Spec: socketio/socket.io-protocol (v5). The Engine.IO packets (OPEN, CLOSE, PING, PONG) are
those of rooms.engineio.packets, re-exported here so that `decode` and `encode` take any frame: a
Socket.IO packet is decoded in one pass from its frame, `4` included, with no copy of the
Engine.IO message's data.

Binary data travels as the official clients send it: a BINARY_EVENT or BINARY_ACK text frame
whose JSON holds a `{"_placeholder": true, "num": i}` for each bytes value, followed by that
many binary frames (socket.io-protocol v5, "Packet encoding", and socket.io-parser's
`deconstructPacket`/`reconstructPacket`). `decode` gives the head (`BinaryHead`), `assemble`
the EVENT or ACK once its attachments have come, and an event with bytes in its arguments is
encoded as such a series of frames (`Frame`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, TypeAlias

from rooms.engineio import packets as engineio
from rooms.engineio.bounded_json import (
    MAX_JSON_DEPTH,
    MAX_JSON_ELEMENTS,
    MAX_JSON_INT_DIGITS,
    LongInteger,
)
from rooms.engineio.bounded_json import dumps as _dumps
from rooms.engineio.bounded_json import parse as _parse_json
from rooms.engineio.errors import ProtocolError
from rooms.engineio.packets import MESSAGE, Close, Open, Ping, Pong

__all__ = [
    "MAX_JSON_DEPTH",
    "MAX_JSON_ELEMENTS",
    "MAX_JSON_INT_DIGITS",
    "Close",
    "Open",
    "Ping",
    "Pong",
    "ProtocolError",
]


class RefusedPayload(ProtocolError):
    """A well-formed packet whose JSON payload this server will not take. The packet's
    head says whom to answer, so the peer gets a clear refusal and keeps its connection."""

    def __init__(self, message: str, kind: str, ack_id: int | None, namespace: str) -> None:
        super().__init__(message)
        self.kind = kind  # the Socket.IO packet type digit: "0" CONNECT, "2" EVENT, ...
        self.ack_id = ack_id
        self.namespace = namespace


class InvalidText(RefusedPayload):
    """A payload holding a lone UTF-16 surrogate ("\\ud800"): valid JSON, but no UTF-8
    text, so nothing could ever send it on."""

    def __init__(self, kind: str, ack_id: int | None, namespace: str) -> None:
        message = "invalid Unicode in the payload (a lone surrogate)"
        super().__init__(message, kind, ack_id, namespace)


DEFAULT_NAMESPACE = "/"
# socket.io-parser refuses these as event names: they mean something to the EventEmitters.
RESERVED_EVENTS = frozenset(
    {"connect", "connect_error", "disconnect", "disconnecting", "newListener", "removeListener"}
)
MAX_ACK_ID_DIGITS = 10  # enough for any id a client counter reaches, small enough to bound parsing
# Binary frames one BINARY_EVENT or BINARY_ACK may announce (each also counts against the
# connection's frame and byte budgets, and all of them with the head against maxPayload).
MAX_ATTACHMENTS = 10

Frame: TypeAlias = str | list[str | bytes]
"""What one event is on the wire: a text frame, or a binary event's text frame followed by
its attachments, each a binary frame."""


@dataclass(frozen=True, slots=True)
class Connect:
    """Socket.IO CONNECT (40): the client's auth payload, or the server's `{"sid": ...}` reply."""

    auth: dict[str, Any] | None = None
    namespace: str = DEFAULT_NAMESPACE


@dataclass(frozen=True, slots=True)
class Disconnect:
    """Socket.IO DISCONNECT (41): leave (client) or drop (server) one namespace."""

    namespace: str = DEFAULT_NAMESPACE


@dataclass(frozen=True, slots=True)
class Event:
    """Socket.IO EVENT (42); with an ack id the sender expects an ACK carrying the same id."""

    name: str
    args: tuple[Any, ...] = ()
    ack_id: int | None = None
    namespace: str = DEFAULT_NAMESPACE


@dataclass(frozen=True, slots=True)
class Ack:
    """Socket.IO ACK (43): the reply to the EVENT that carried `ack_id`."""

    args: tuple[Any, ...]
    ack_id: int
    namespace: str = DEFAULT_NAMESPACE


@dataclass(frozen=True, slots=True)
class ConnectError:
    """Socket.IO CONNECT_ERROR (44): the server refuses a CONNECT; the client gives up."""

    message: str
    namespace: str = DEFAULT_NAMESPACE


@dataclass(frozen=True, slots=True)
class BinaryHead:
    """Socket.IO BINARY_EVENT (45) or BINARY_ACK (46): the packet's JSON, with a placeholder
    where each of its `attachments` goes; they follow as that many binary frames, and
    `assemble` then gives the EVENT or ACK."""

    kind: str  # "5" (BINARY_EVENT) or "6" (BINARY_ACK)
    attachments: int
    payload: list[Any]
    ack_id: int | None = None
    namespace: str = DEFAULT_NAMESPACE


Packet: TypeAlias = (
    Open | Close | Ping | Pong | Connect | Disconnect | Event | Ack | ConnectError | BinaryHead
)

_ABSENT: Any = object()  # "no JSON payload", distinct from a JSON null


# A \u escape of a UTF-16 surrogate, or a surrogate itself (a str frame that never was
# UTF-8): where a lone surrogate in decoded JSON can come from.
_MAYBE_SURROGATE = re.compile("\\\\u[dD][89a-fA-F]|[\ud800-\udfff]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def _has_lone_surrogate(value: Any) -> bool:
    """Whether any string in the decoded JSON (keys included) holds a lone surrogate;
    Python's JSON decoder joins a valid pair into one character."""
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, str):
            if _SURROGATE.search(node):
                return True
        elif isinstance(node, dict):
            stack.extend(node.keys())
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return False


def decode(frame: str, *, max_payload: int = 1_000_000) -> Packet:
    """Decode one WebSocket text frame; raise ProtocolError, and only that, for any bad input.
    A message (`4`) is a Socket.IO packet; any other frame an Engine.IO one."""
    if not frame or len(frame) > max_payload:
        engineio.check_frame(frame, max_payload)  # raises, saying which
    if frame[0] == MESSAGE:
        return _decode_socketio(frame)
    return engineio.decode_control(frame)


def _decode_socketio(frame: str) -> Packet:
    """Parse `4<type>[/<namespace>,][<ack id>][<JSON>]` the way socket.io-parser does."""
    n = len(frame)
    if n < 2:
        raise ProtocolError("empty Socket.IO packet")
    kind = frame[1]
    if kind not in "0123456":  # kind is one character, so this is a membership test
        raise ProtocolError(f"unknown Socket.IO packet type {kind!r}")
    i = 2
    attachments = 0
    if kind in "56":  # `<count>-` comes first
        dash = frame.find("-", i, i + 4)
        if dash < 0 or not frame[i:dash].isdigit() or not frame[i:dash].isascii():
            raise ProtocolError("binary packet without its attachment count")
        attachments = int(frame[i:dash])
        if not 1 <= attachments <= MAX_ATTACHMENTS:
            raise ProtocolError(f"a binary packet carries 1 to {MAX_ATTACHMENTS} attachments")
        i = dash + 1
    namespace = DEFAULT_NAMESPACE
    if i < n and frame[i] == "/":
        # The namespace runs to the first comma, or to the end of the frame ("40/random").
        comma = frame.find(",", i)
        end = n if comma < 0 else comma
        namespace = frame[i:end]
        if not namespace.isprintable():
            raise ProtocolError("malformed namespace")
        i = end + 1
    start = i
    while i < n and "0" <= frame[i] <= "9":
        i += 1
        if i - start > MAX_ACK_ID_DIGITS:
            raise ProtocolError(f"ack id longer than {MAX_ACK_ID_DIGITS} digits")
    ack_id = int(frame[start:i]) if i > start else None
    try:
        payload = _parse_json(frame[i:]) if i < n else _ABSENT
    except LongInteger as exc:
        raise RefusedPayload(str(exc), kind, ack_id, namespace) from None
    if (
        payload is not _ABSENT
        and _MAYBE_SURROGATE.search(frame, i)
        and _has_lone_surrogate(payload)
    ):
        raise InvalidText(kind, ack_id, namespace)

    if ack_id is not None and kind not in "2356":
        raise ProtocolError("only EVENT and ACK packets carry an ack id")
    if kind == "5":
        if not isinstance(payload, list) or not payload:
            raise ProtocolError("BINARY_EVENT payload must be a non-empty array")
        _event_name(payload[0])
        return BinaryHead(kind, _placed(payload, attachments), payload, ack_id, namespace)
    if kind == "6":
        if ack_id is None:
            raise ProtocolError("BINARY_ACK without an ack id")
        if not isinstance(payload, list):
            raise ProtocolError("BINARY_ACK payload must be an array")
        return BinaryHead(kind, _placed(payload, attachments), payload, ack_id, namespace)
    if kind == "2":
        if not isinstance(payload, list) or not payload:
            raise ProtocolError("EVENT payload must be a non-empty array")
        return Event(_event_name(payload[0]), tuple(payload[1:]), ack_id, namespace)
    if kind == "3":
        if ack_id is None:
            raise ProtocolError("ACK without an ack id")
        if not isinstance(payload, list):
            raise ProtocolError("ACK payload must be an array")
        return Ack(tuple(payload), ack_id, namespace)
    if kind == "0":
        if payload is _ABSENT:
            return Connect(None, namespace)
        if not isinstance(payload, dict):
            raise ProtocolError("CONNECT payload must be a JSON object")
        return Connect(payload, namespace)
    if kind == "1":
        if payload is not _ABSENT:
            raise ProtocolError("DISCONNECT carries no payload")
        return Disconnect(namespace)
    # CONNECT_ERROR: {"message": "..."}; older servers sent a bare string.
    message = payload.get("message") if isinstance(payload, dict) else payload
    if not isinstance(message, str):
        raise ProtocolError('CONNECT_ERROR payload must be {"message": <string>} or a string')
    return ConnectError(message, namespace)


def _placed(payload: list[Any], attachments: int) -> int:
    """`attachments`, once the payload holds one placeholder for each of them, numbered 0 to
    attachments - 1, as socket.io-parser's `deconstructPacket` writes them; a head that
    announces attachments it never places (or places one twice) is refused before any of
    them is waited for."""
    nums: list[Any] = []

    def collect(value: Any) -> None:
        if isinstance(value, list):
            for item in value:
                collect(item)
        elif isinstance(value, dict):
            if value.get("_placeholder") is True:
                nums.append(value.get("num"))
            else:
                for item in value.values():
                    collect(item)

    collect(payload)
    if any(type(n) is not int for n in nums) or sorted(nums) != list(range(attachments)):
        raise ProtocolError(f"the placeholders do not name the {attachments} attachments")
    return attachments


def assemble(head: BinaryHead, attachments: list[bytes]) -> Event | Ack:
    """The EVENT or ACK of a binary packet, each placeholder replaced by its attachment, as
    socket.io-parser's `reconstructPacket` does (a placeholder with no such attachment is
    refused)."""
    if len(attachments) != head.attachments:
        raise ProtocolError(f"expected {head.attachments} attachments, got {len(attachments)}")

    def filled(value: Any) -> Any:  # as deep as the payload, which _parse_json bounded
        if isinstance(value, list):
            return [filled(item) for item in value]
        if isinstance(value, dict):
            if value.get("_placeholder") is True:
                num = value.get("num")
                if type(num) is not int or not 0 <= num < len(attachments):
                    raise ProtocolError("a placeholder names no attachment")
                return attachments[num]
            return {key: filled(item) for key, item in value.items()}
        return value

    args = filled(head.payload)
    if head.kind == "5":
        return Event(_event_name(args[0]), tuple(args[1:]), head.ack_id, head.namespace)
    assert head.ack_id is not None  # decode refuses a BINARY_ACK without one
    return Ack(tuple(args), head.ack_id, head.namespace)


def _with_placeholders(value: Any, attachments: list[bytes]) -> Any:
    """`value` with each bytes value replaced by a placeholder, appended to `attachments`
    (socket.io-parser's `deconstructPacket`)."""
    if isinstance(value, bytes | bytearray | memoryview):
        attachments.append(bytes(value))
        return {"_placeholder": True, "num": len(attachments) - 1}
    if isinstance(value, list | tuple):
        return [_with_placeholders(item, attachments) for item in value]
    if isinstance(value, dict):
        return {key: _with_placeholders(item, attachments) for key, item in value.items()}
    return value


def has_binary(value: Any) -> bool:
    if isinstance(value, bytes | bytearray | memoryview):
        return True
    if isinstance(value, list | tuple):
        return any(has_binary(item) for item in value)
    if isinstance(value, dict):
        return any(has_binary(item) for item in value.values())
    return False


def _event_name(value: Any) -> str:
    """socket.io-parser also accepts numeric names; we turn them into their str() form."""
    if isinstance(value, str):
        if value in RESERVED_EVENTS:
            raise ProtocolError(f"{value!r} is a reserved event name")
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise ProtocolError("EVENT name must be a string or a number")


def _prefix(kind: str, namespace: str, ack_id: int | None = None) -> str:
    """The `4<type>[/<namespace>,][<ack id>]` head; raise ValueError for what cannot round-trip."""
    head = kind
    if namespace != DEFAULT_NAMESPACE:
        if not namespace.startswith("/") or "," in namespace or not namespace.isprintable():
            raise ValueError(f"cannot encode namespace {namespace!r}")
        head += namespace + ","
    if ack_id is not None:
        if not 0 <= ack_id < 10**MAX_ACK_ID_DIGITS:
            raise ValueError(f"ack id out of range: {ack_id}")
        head += str(ack_id)
    return head


def encode(packet: Packet) -> str:
    """Encode one packet as the exact text frame; Socket.IO packets get the Engine.IO "4"."""
    match packet:
        case Event(name, args, ack_id, namespace):
            if name in RESERVED_EVENTS:
                raise ValueError(f"{name!r} is a reserved event name")
            return _prefix("42", namespace, ack_id) + _dumps([name, *args])
        case Ack(args, ack_id, namespace):
            return _prefix("43", namespace, ack_id) + _dumps(list(args))
        case Connect(auth, namespace):
            return _prefix("40", namespace) + ("" if auth is None else _dumps(auth))
        case Disconnect(namespace):
            return _prefix("41", namespace)
        case ConnectError(message, namespace):
            return _prefix("44", namespace) + _dumps({"message": message})
        case Open() | Close() | Ping() | Pong():
            return engineio.encode(packet)
    raise TypeError(f"not a packet: {packet!r}")


def encode_event(name: str, *args: Any) -> str:
    """`encode(Event(name, args))` for the hot path: main namespace, no ack, no bytes."""
    if name in RESERVED_EVENTS:
        raise ValueError(f"{name!r} is a reserved event name")
    return "42" + _dumps([name, *args])


def encode_event_frame(name: str, *args: Any) -> Frame:
    """`encode_event`, or, when the arguments hold bytes, the BINARY_EVENT and its
    attachments."""
    if not has_binary(args):
        return encode_event(name, *args)
    if name in RESERVED_EVENTS:
        raise ValueError(f"{name!r} is a reserved event name")
    attachments: list[bytes] = []
    payload = _with_placeholders([name, *args], attachments)
    if len(attachments) > MAX_ATTACHMENTS:
        raise ValueError(f"more than {MAX_ATTACHMENTS} bytes values in one event")
    return [f"45{len(attachments)}-" + _dumps(payload), *attachments]


def frame_size(frame: Frame) -> int:
    """The bytes a frame carries (what it costs each room it is published to)."""
    if isinstance(frame, str):
        return len(frame.encode("utf-8", "replace"))
    return sum(len(part.encode("utf-8", "replace") if isinstance(part, str) else part)
               for part in frame)  # fmt: skip
