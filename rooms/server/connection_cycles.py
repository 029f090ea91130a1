"""What each WebSocket connection leaves behind, freed by reference counting at once.

daphne and autobahn leave two reference cycles behind every WebSocket connection:
- the upgrade: daphne hands the TCP transport from its HTTP channel to a WebSocket
  protocol and leaves the channel and its request pointing at each other
  (`channel.requests[0].channel`), with the handshake's headers and body;
- the close: autobahn resolves `is_closed` with the protocol itself, so the protocol holds
  a Deferred that holds the protocol, and with it all of autobahn's per-connection state.
Only a full collection frees an old cycle, and CPython starts one only when the objects
promoted since the last one reach a quarter of the long-lived ones: 2-3 per worker in a
whole `make soak`, all at start-up, while such garbage grew 4 workers by 34 MB after
warm-up in 300 s, against 4 MB with the cycles cut (bench/README.md, "Where the soak's
memory goes"). Here
each cycle is cut where it is made, so the objects go as soon as nothing else holds them.
Both are upstream bugs; the write-ups, with a reproduction and the patch each project could
take, are docs/upstream/daphne-upgrade-request-cycle.md and
docs/upstream/autobahn-is-closed-cycle.md.
"""

from __future__ import annotations

from typing import Any

from daphne.http_protocol import WebRequest
from daphne.ws_protocol import WebSocketProtocol
from twisted.internet import defer

_process = WebRequest.process
_connection_lost = WebSocketProtocol.connectionLost


def process_then_let_go_of_an_upgrade(request: WebRequest) -> Any:
    """daphne's request handling; a request whose transport went to a WebSocket protocol
    (daphne does that before its first yield) is then dropped from its HTTP channel, which
    serves no more requests."""
    processing = _process(request)
    # a request daphne answered at once (its 400 for a bad header) no longer has a channel
    channel = getattr(request, "channel", None)
    if request.transport is None and channel is not None and request in channel.requests:
        channel.requests.remove(request)
    return processing


def connection_lost_without_holding_itself(protocol: WebSocketProtocol, reason: Any) -> None:
    """autobahn's close handling; `is_closed` then stays fired but with None, not the
    protocol (nothing in daphne or Channels waits on it)."""
    _connection_lost(protocol, reason)
    protocol.is_closed = defer.succeed(None)


def install() -> None:
    """Idempotent; affects requests and connections from now on."""
    WebRequest.process = process_then_let_go_of_an_upgrade
    WebSocketProtocol.connectionLost = connection_lost_without_holding_itself
