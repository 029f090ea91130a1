"""How a bus message (a dict of str, int, bytes, lists, dicts) travels as a Redis payload.

MessagePack keeps bytes as bytes (a worker's roster part is JSON it encoded once and the
asker joins without decoding) and is what channels_redis uses for the same purpose.
"""

from __future__ import annotations

from typing import Any

import msgpack


class UnreadableMessage(ValueError):
    """A payload on a bus channel that is not a message of ours."""


def serialize(message: dict[str, Any]) -> bytes:
    return msgpack.packb(message, use_bin_type=True)  # type: ignore[no-any-return]


def deserialize(data: bytes) -> dict[str, Any]:
    try:
        message = msgpack.unpackb(data, raw=False)
    except Exception as exc:  # msgpack raises several unrelated types for bad input
        raise UnreadableMessage(f"not a bus message: {exc}") from exc
    if not isinstance(message, dict):
        raise UnreadableMessage(f"not a bus message: a {type(message).__name__}")
    return message
