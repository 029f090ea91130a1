"""autobahn's debug-log arguments, not computed for lines nobody logs.

autobahn builds the arguments of its `log.debug(...)` lines before the level is checked:
every frame sent or received calls `hltype`/`hlval` (qualified names, terminal colours),
and every new connection pretty-prints its 40-odd settings with `pprint.pformat`. In a
py-spy profile of a connect storm that is about 8% of worker CPU (bench/README.md,
"Server tuning"). Here, as the two autobahn modules that log per frame see them, those
helpers pass values through, and `pformat` formats nothing unless autobahn's debug lines
are on (a plain `repr` of the settings alone costs 2.6% of a connect storm's CPU); a debug
line that is emitted still shows them, plainly.
"""

from __future__ import annotations

from typing import Any

import txaio
from autobahn.twisted import websocket as twisted_websocket
from autobahn.websocket import protocol


def as_is(value: Any, *_args: Any, **_kwargs: Any) -> Any:
    return value


NOT_FORMATTED = "(not formatted: autobahn's debug logging is off)"


def plain_repr(value: Any, *_args: Any, **_kwargs: Any) -> str:
    """`repr(value)` where a debug line will show it; autobahn calls `pformat` for nothing
    else but `Timings.__str__` (trackTimings, off under daphne)."""
    if txaio.get_global_log_level() in ("debug", "trace"):  # type: ignore[attr-defined]
        return repr(value)
    return NOT_FORMATTED


def install() -> None:
    """Idempotent; affects connections made from now on and every frame."""
    for module in (protocol, twisted_websocket):
        module.hltype = as_is  # type: ignore[attr-defined]
        module.hlval = as_is  # type: ignore[attr-defined]
    protocol.pformat = plain_repr  # type: ignore[attr-defined,assignment]
