"""Every WebSocket frame a client sends counts against its connection's frame budget.

autobahn hands daphne a text message only once its last fragment has arrived
(autobahn/websocket/protocol.py: processData -> onFrameBegin ... onMessageEnd -> daphne's
onMessage), so an application that counts messages never sees a message split into a
hundred thousand fragments, nor empty continuation frames sent forever, nor WebSocket
pings (RFC 6455 sections 5.4 and 5.5.2). Each of those costs autobahn a header parse and
a copy of the rest of its input buffer (`self.data = self.data[i:]`, per frame), and
fragments pile up in the message's list: one such client, uncounted, keeps a worker at
100% CPU (issue 29, item 3).

Here `onFrameBegin`, which autobahn calls for every frame (first, continuation, control),
takes one token from the connection's bucket: `rate` a second, in bursts of `burst` (the
application's SOCKETIO_FRAME_RATE, handed in by the worker's entry point). Past it, what
the client has sent is dropped unparsed and the connection is no longer read, and an
application that asked for it (`notify_in_order`) gets an ASGI message of type
OVER_BUDGET behind the messages already queued for it, so it answers those, then says
why it closes; if it did not ask, or has not closed within `GRACE_S`, the connection is
closed here with 1008 (policy violation, RFC 6455 section 7.4.1). A message's total size
is bounded as its fragments arrive by autobahn itself (`maxMessagePayloadSize`, checked
in onMessageFrameBegin before a fragment's payload is read), which daphne's
`--websocket-max-message-size` sets and the runner hands SOCKETIO_MAX_PAYLOAD.

Always on, whatever SERVER_TUNING says: this is a safety limit, not a speed-up. Nothing of
the application is known here.
"""

from __future__ import annotations

import time
from functools import partial
from typing import Any

from daphne.ws_protocol import WebSocketProtocol

# for the application to answer what was queued, say why and close (the client's input is
# dropped meanwhile), before the connection is closed here
GRACE_S = 5.0
OVER_BUDGET = "websocket.over_budget"  # the ASGI message type; handler: websocket_over_budget
CLOSE_REASON = b"too many WebSocket frames"

_on_frame_begin = WebSocketProtocol.onFrameBegin

_rate: float = 0.0
_burst: float = 0.0
_reactor: Any = None


class FrameBudget:
    """A token bucket per connection: full at `burst`, refilled `rate` a second."""

    __slots__ = ("tokens", "updated", "exceeded", "notify")

    def __init__(self) -> None:
        self.tokens = _burst
        self.updated = time.monotonic()
        self.exceeded = False
        self.notify = False  # whether the application asked for an OVER_BUDGET message

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(_burst, self.tokens + (now - self.updated) * _rate)
        self.updated = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


def budget_of(protocol: Any) -> FrameBudget:
    budget: FrameBudget | None = protocol.__dict__.get("frame_budget")
    if budget is None:
        budget = protocol.frame_budget = FrameBudget()
    return budget


def _drop(data: bytes) -> None:
    pass


def close_over_budget(protocol: Any) -> None:
    """Close with 1008 unless the connection is closing already."""
    if protocol.state == WebSocketProtocol.STATE_OPEN:
        protocol.sendCloseFrame(code=1008, reasonUtf8=CLOSE_REASON, isReply=False)


def refuse(protocol: Any, budget: FrameBudget) -> None:
    """Stop reading this client; let the application close it, or close it here."""
    budget.exceeded = True
    protocol.data = b""  # what it sent behind this frame is not parsed
    protocol.transport.pauseProducing()  # nor read: the kernel's buffers fill, then its sends wait
    protocol.dataReceived = _drop  # should reading resume (Twisted's producer API), dropped
    queue = getattr(protocol, "application_queue", None)
    if not budget.notify or queue is None:
        close_over_budget(protocol)
        return
    queue.put_nowait({"type": OVER_BUDGET})
    _reactor.callLater(GRACE_S, close_over_budget, protocol)


def on_frame_begin(protocol: Any) -> None:
    _on_frame_begin(protocol)
    budget = budget_of(protocol)
    if not budget.exceeded and not budget.take():
        refuse(protocol, budget)


def notify_in_order(send: object) -> bool:
    """Have an OVER_BUDGET message queued for the application when the connection behind
    daphne's ASGI `send` of a WebSocket (`partial(Server.handle_reply, protocol)`,
    daphne/server.py) goes over its frame budget; False when there is no such connection
    or no budget is installed."""
    if not (_rate and isinstance(send, partial) and send.args):
        return False
    connection = send.args[0]
    if not isinstance(connection, WebSocketProtocol):
        return False
    budget_of(connection).notify = True
    return True


def install(reactor: Any, *, frame_rate: float, frame_burst: float) -> None:
    """Count every WebSocket frame daphne reads from now on (idempotent; the last figures
    given hold)."""
    global _rate, _burst, _reactor
    if frame_rate <= 0 or frame_burst < 1:
        raise ValueError(f"frame_rate {frame_rate} must be > 0, frame_burst {frame_burst} >= 1")
    _rate, _burst, _reactor = frame_rate, frame_burst, reactor
    WebSocketProtocol.onFrameBegin = on_frame_begin
