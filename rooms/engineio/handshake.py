"""Which requests for `/socket.io/` open no session, and the error the reference server gives.

Codes and messages are engine.io's (`Server.errors`, lib/server.ts); the spec's "Handshake"
names the query parameters: https://github.com/socketio/engine.io-protocol (v4).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class HandshakeError:
    """An HTTP 400 whose JSON body is `{"code": code, "message": message}`."""

    code: int
    message: str


TRANSPORT_UNKNOWN = HandshakeError(0, "Transport unknown")
BAD_REQUEST = HandshakeError(3, "Bad request")
UNSUPPORTED_PROTOCOL_VERSION = HandshakeError(5, "Unsupported protocol version")

TRANSPORTS = frozenset({"polling", "websocket"})


def refusal(
    query: dict[str, list[str]], transports: frozenset[str] = TRANSPORTS
) -> HandshakeError | None:
    """Why a request with this query string opens no session, or None: EIO=4 over one of
    `transports`. `query` is `urllib.parse.parse_qs`'s."""
    if query.get("transport", [""])[0] not in transports:
        return TRANSPORT_UNKNOWN
    if query.get("EIO", [""])[0] != "4":
        return UNSUPPORTED_PROTOCOL_VERSION
    return None
