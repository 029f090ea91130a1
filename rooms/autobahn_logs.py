"""autobahn's debug-log arguments, no longer computed for lines nobody logs.

autobahn builds the arguments of its `log.debug(...)` lines before the level is checked:
every frame sent or received calls `hltype`/`hlval` (qualified names, terminal colours),
and every new connection pretty-prints its 40-odd settings with `pprint.pformat`. In a
py-spy profile of a connect storm that was about 8% of worker CPU (bench/README.md).
Here, as the two autobahn modules that log per frame see them, those helpers pass values
through (`pformat` becomes `repr`); a debug line that is emitted still shows them, plainly.
"""

from __future__ import annotations

from typing import Any

from autobahn.twisted import websocket as twisted_websocket
from autobahn.websocket import protocol


def as_is(value: Any, *_args: Any, **_kwargs: Any) -> Any:
    return value


def plain_repr(value: Any, *_args: Any, **_kwargs: Any) -> str:
    return repr(value)


def install() -> None:
    """Idempotent; affects connections made from now on and every frame."""
    for module in (protocol, twisted_websocket):
        module.hltype = as_is  # type: ignore[attr-defined]
        module.hlval = as_is  # type: ignore[attr-defined]
    protocol.pformat = plain_repr  # type: ignore[attr-defined,assignment]
