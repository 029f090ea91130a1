"""Engine.IO v4 long-polling payloads: the packets of one HTTP body, joined by a record
separator, binary ones as `b` + base64.

Spec: https://github.com/socketio/engine.io-protocol, "Packet encoding" (HTTP long-polling):
`<packet>\\x1e<packet>...`; a binary message is `b<base64>`. Sans-I/O: text in, packets out.
"""

from __future__ import annotations

import base64
import binascii

from rooms.engineio.errors import ProtocolError

SEPARATOR = "\x1e"
BINARY = "b"

Item = str | bytes
"""One packet of a payload: its text (`<type digit><data>`), or a binary message's bytes."""


def decode(body: str, *, max_packets: int) -> list[Item]:
    """The packets of a POST body, in order; ProtocolError for an empty packet, bad base64,
    or more than `max_packets` packets."""
    if not body:
        raise ProtocolError("empty payload")
    parts = body.split(SEPARATOR, max_packets)
    if len(parts) > max_packets:
        raise ProtocolError(f"more than {max_packets} packets in one payload")
    items: list[Item] = []
    for part in parts:
        if not part:
            raise ProtocolError("empty packet in payload")
        if part[0] == BINARY:
            try:
                items.append(base64.b64decode(part[1:], validate=True))
            except (binascii.Error, ValueError):
                raise ProtocolError("invalid base64 in a binary packet") from None
        else:
            items.append(part)
    return items


def encode(items: list[Item]) -> str:
    """One GET response body for these packets."""
    return SEPARATOR.join(
        item if isinstance(item, str) else BINARY + base64.b64encode(item).decode("ascii")
        for item in items
    )
