"""JSON from the peer, parsed within bounds: what one frame may cost this worker.

Every payload a peer sends (an Engine.IO OPEN, a Socket.IO packet) is parsed here, so no
frame of maxPayload characters can cost more than a bounded parse: elements, nesting and
integer length are refused past their limits, before or while decoding.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from rooms.engineio.errors import ProtocolError

MAX_JSON_DEPTH = 32
# Arrays, objects and their elements one frame may hold: decoding 750 KB of nested empty
# arrays took 140-190 ms of CPU, which a client could repeat every frame.
MAX_JSON_ELEMENTS = 10_000
# JSON.stringify writes every number from 1e21 on in exponent form, so no JavaScript client
# sends a longer integer; int() of a long digit string costs quadratic time, which is why
# Python refuses past 4,300 digits (CVE-2020-10735) with a ValueError of its own.
MAX_JSON_INT_DIGITS = 100


class LongInteger(ProtocolError):
    """A JSON integer of more than MAX_JSON_INT_DIGITS digits (a layer above may answer it
    rather than close the connection)."""


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")  # Python accepts NaN/Infinity; JSON.parse does not


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):  # "1e999": we could not encode it back as JSON
        raise ValueError(f"number out of range: {text[:20]}")
    return value


def _bounded_int(text: str) -> int:
    if len(text) > MAX_JSON_INT_DIGITS + (text[0] == "-"):
        raise LongInteger(f"a JSON integer longer than {MAX_JSON_INT_DIGITS} digits")
    return int(text)


# One encoder/decoder each: json.dumps/loads with options would build a new one per call.
dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode
_loads = json.JSONDecoder(
    parse_float=_finite_float, parse_int=_bounded_int, parse_constant=_reject_constant
).decode


# A JSON string, to blank out before counting structure (escapes included). Possessive
# (Python 3.11), so nothing it consumed is tried again, and its closing quote optional, so
# an unterminated string is consumed once to the end of the text: a search that fails
# after each opening quote and starts over at the next costs time quadratic in the text.
_JSON_STRING = re.compile(r'"(?:[^"\\]++|\\.)*+"?', re.DOTALL)


def _check_size(text: str) -> None:
    """Refuse more than MAX_JSON_ELEMENTS before decoding, counting brackets and commas
    outside strings; the cheap count over the whole text decides whether to look closer."""
    if text.count("[") + text.count("{") + text.count(",") <= MAX_JSON_ELEMENTS:
        return
    bare = _JSON_STRING.sub('""', text)
    if bare.count("[") + bare.count("{") + bare.count(",") > MAX_JSON_ELEMENTS:
        raise ProtocolError(f"JSON payload has more than {MAX_JSON_ELEMENTS} elements")


def parse(text: str) -> Any:
    """The JSON value of `text`; ProtocolError (LongInteger for a long integer) otherwise."""
    _check_size(text)
    try:
        value = _loads(text)  # trailing data raises "Extra data"
    except RecursionError:
        raise ProtocolError("JSON payload nested too deeply") from None
    except LongInteger:
        raise
    except ValueError as exc:
        raise ProtocolError(f"invalid JSON payload: {exc}") from None
    # Fewer brackets than the limit cannot nest past it: skips the walk for typical frames.
    if isinstance(value, list | dict) and text.count("[") + text.count("{") > MAX_JSON_DEPTH:
        _check_depth(value)
    return value


def _check_depth(value: list[Any] | dict[str, Any]) -> None:
    """Bound nesting iteratively, so a hostile payload cannot blow the stack later."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise ProtocolError(f"JSON payload nested deeper than {MAX_JSON_DEPTH}")
        children = node.values() if isinstance(node, dict) else node
        stack.extend((c, depth + 1) for c in children if isinstance(c, list | dict))
