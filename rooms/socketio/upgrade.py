"""A WebSocket that upgrades a long-polling session, on the session's worker or any other.

The client opens `/socket.io/?EIO=4&transport=websocket&sid=<sid>`, sends PING "probe",
waits for PONG "probe", then sends UPGRADE: from then on the session's packets go over this
WebSocket (https://github.com/socketio/engine.io-protocol, "Upgrade"). A WebSocket that lands
on the session's worker (rooms.socketio.polling) carries its packets directly. One that
lands on another worker takes the session over there before answering the probe, on the
bus's own layer: the socket keeps its id, its user and its rooms, and each room's stream of
events is cut for it by a mark in that room's group (rooms.cluster.node.move_in), so no event
is lost or delivered twice and no room hears of it. On any other channel layer, whose group
messages reach the members in no one order, it relays the packets to the session's worker
over the bus instead, both ways, one message per packet, in order. docs/architecture.md,
"Long-polling and the upgrade, with no sticky sessions", gives the failure cases.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from rooms.bus.directory import ClusterUnavailable
from rooms.cluster.node import WorkerNode
from rooms.cluster.requests import WorkerUnavailable
from rooms.engineio import packets, payload, sids
from rooms.engineio.errors import ProtocolError
from rooms.engineio.session import TRANSPORT_CLOSE
from rooms.server import backpressure
from rooms.socketio.dispatch import DirectDispatch
from rooms.socketio.polling import ARRIVING, SESSIONS, PollingTransport, sid_key

logger = logging.getLogger(__name__)

# what the session's worker and a relaying worker tell each other (rooms.cluster.requests)
UPGRADE = "eio.upgrade"  # request {sid, channel, relay}: attach the relay; answer True if so
RELAY_IN = "eio.relay-in"  # {sid, relay, item}: a packet from the client
RELAY_GONE = "eio.relay-gone"  # {sid, relay}: the relayed WebSocket closed
RELAY_OUT = "eio.relay-out"  # {relay, item}: a packet for the client
RELAY_CLOSE = "eio.relay-close"  # {relay}: the session is over, close the WebSocket
# the handover of a session to the worker its upgrading WebSocket landed on
UPGRADABLE = "eio.upgradable"  # request {sid}: whether a WebSocket may probe the session
HANDOVER = "eio.handover"  # request {sid, procid, channel}: the session's state, or refused
HANDOVER_QUEUE = "eio.handover-queue"  # {sid, items, served}: its queue, to the taker
HANDOVER_ABORT = "eio.handover-abort"  # {sid, left}: it closed there first; rooms given up
HANDOVER_WITHIN = 10.0  # seconds the taker waits for the whole handover

HANDS_OVER = False
"""Whether upgrades on another worker take the session over (the bus's own layer) rather
than relay it (serve_upgrades)."""

RELAYS: dict[str, UpgradeConsumer] = {}
"""The WebSockets this worker relays for sessions of other workers, by relay id."""

NewSession = Callable[[dict[str, Any], dict[str, list[str]], str], PollingTransport[Any]]
"""(scope, query, sid) -> a session of the layer above, to rebuild a handed-over one in."""


class HandoverFailed(Exception):
    """The session's worker went away, or its session closed, during the handover."""


class Arrival:
    """A session being handed over to this worker: done once it is rebuilt here and its old
    worker's queue came (in either order)."""

    def __init__(self, sid: str, owner: str, websocket: UpgradeConsumer) -> None:
        self.sid, self.owner, self.websocket = sid, owner, websocket
        self.transport: PollingTransport[Any] | None = None
        self.items: list[payload.Item] | None = None
        self.served: list[str] = []
        self.deferred: list[payload.Item] = []
        self.left: list[str] | None = None  # rooms its old worker gave up, if it failed
        self.finished: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        ARRIVING[sid] = self.finished

    def shipped(
        self, items: list[payload.Item], served: list[str], deferred: list[payload.Item]
    ) -> None:
        self.items, self.served, self.deferred = items, served, deferred
        self.finish()

    def finish(self) -> None:
        transport = self.transport
        if self.finished.done() or self.items is None or transport is None:
            return
        ARRIVALS.pop(self.sid, None)
        try:
            pong = transport.took_over(self.items, self.served)
        except ProtocolError as exc:  # closed meanwhile
            self.fail(str(exc))
            return
        _spawn(self._land(transport, pong))

    async def _land(self, transport: PollingTransport[Any], pong: payload.Item) -> None:
        """What the client sent while the session moved is taken here, then the probe is
        answered and requests waiting for the session are let in."""
        try:
            await transport.land(self.deferred)
        except TimeoutError:  # its rooms' marks never all came through
            self.fail("the socket's rooms were not all cut over in time")
            return
        ARRIVING.pop(self.sid, None)
        if transport.closing:
            self.fail("the session closed while it landed")
            return
        self.websocket.queue.put_nowait(pong)
        if not self.finished.done():
            self.finished.set_result(None)

    def fail(self, reason: str, left: list[str] | None = None) -> None:
        if left is not None and not self.finished.done():
            self.left = left
        ARRIVALS.pop(self.sid, None)
        ARRIVING.pop(self.sid, None)
        if not self.finished.done():
            self.finished.set_exception(HandoverFailed(reason))


ARRIVALS: dict[str, Arrival] = {}
"""Sessions being handed over to this worker, by sid."""

_TASKS: set[asyncio.Future[Any]] = set()


def _spawn(coroutine: Awaitable[Any]) -> None:
    task = asyncio.ensure_future(coroutine)
    _TASKS.add(task)  # held until done: the loop keeps weak references
    task.add_done_callback(_TASKS.discard)


class UpgradeConsumer(DirectDispatch, AsyncWebsocketConsumer):
    """The WebSocket of an upgrade; its packets go to the session's worker."""

    transport: PollingTransport[Any] | None = None  # the session, when it is this worker's
    relay = ""  # the relay id, when the session is another worker's
    owner = ""  # that worker's procid
    owner_channel = ""
    outgoing: backpressure.Outgoing | None = None
    handing = ""  # the session's worker, until the probe asks it to hand the session over

    def __init__(self, *args: Any, new_session: NewSession | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.new_session = new_session

    async def connect(self) -> None:
        query = parse_qs(self.scope.get("query_string", b"").decode("latin-1"))
        self.query = query
        sid = query.get("sid", [""])[0]
        owner = sids.owner_of(sid, sid_key(settings.SECRET_KEY))
        try:
            node: WorkerNode = await self.scope["cluster"].node()
        except ClusterUnavailable as exc:
            logger.warning("refusing an upgrade: %s", exc)
            await self.close()
            return
        self.sid, self.node = sid, node
        self.queue: asyncio.Queue[payload.Item | None] = asyncio.Queue()
        if owner is not None and (owner == node.procid or sid in SESSIONS or sid in ARRIVALS):
            # this worker's session, or one handed over to it (or being handed over)
            transport = SESSIONS.get(sid)
            if transport is None or not transport.attach(self):
                await self.close()
                return
            self.transport = transport
        elif owner is not None and HANDS_OVER and self.new_session is not None:
            # a session that cannot be upgraded is refused at the handshake, as on its own
            # worker (a browser sees the close event); the handover is asked at the probe
            try:
                upgradable = await node.ask_worker(owner, UPGRADABLE, {"sid": sid}, within=5.0)
            except WorkerUnavailable as exc:
                logger.info("no upgrade for %s: %s", sid, exc)
                upgradable = False
            if not upgradable:
                await self.close()
                return
            self.handing = owner
        elif owner is not None:
            if not await self._relay(owner):
                await self.close()
                return
        else:
            await self.close()
            return
        await self.accept()
        self.outgoing = backpressure.outgoing(self.base_send)
        self.writer = asyncio.create_task(self._write_queued())

    async def _relay(self, owner: str) -> bool:
        """Relay this WebSocket to the session's worker `owner`; False if it refused."""
        node = self.node
        self.relay, self.owner = secrets.token_hex(8), owner
        RELAYS[self.relay] = self
        args = {"sid": self.sid, "channel": node.channel, "relay": self.relay}
        args["procid"] = node.procid
        try:
            attached = await node.ask_worker(owner, UPGRADE, args, within=5.0)
            self.owner_channel = node.channel_of(owner) or ""
        except WorkerUnavailable as exc:
            logger.info("no upgrade for %s: %s", self.sid, exc)
            attached = False
        if not attached:
            RELAYS.pop(self.relay, None)
            self.relay = ""
        return bool(attached)

    async def _take_over(self, owner: str) -> bool:
        """The session handed over from `owner` to this worker, and the probe answered;
        False when `owner` refused (the session stays there)."""
        node, sid = self.node, self.sid
        assert self.new_session is not None
        arrival = ARRIVALS[sid] = Arrival(sid, owner, self)
        args = {"sid": sid, "procid": node.procid, "channel": node.channel}
        try:
            state = await node.ask_worker(owner, HANDOVER, args, within=5.0)
        except WorkerUnavailable as exc:
            logger.info("no handover of %s: %s", sid, exc)
            arrival.fail(str(exc))
            arrival.finished.exception()  # retrieved: nobody else awaits it
            return False
        transport = self.transport = self.new_session(self.scope, self.query, sid)
        try:
            async with asyncio.timeout(HANDOVER_WITHIN):
                await transport.arrive(state, self)
                arrival.transport = transport
                arrival.finish()
                await arrival.finished
        except Exception as exc:  # timed out, HandoverFailed, the bus away
            logger.info("handover of %s failed: %r", sid, exc)
            arrival.fail(repr(exc))
            arrival.finished.exception()  # retrieved: nobody else awaits it
            transport.handover_failed(arrival.left)
            await transport.close_session(TRANSPORT_CLOSE)  # closes this WebSocket too
        return True

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        item: payload.Item = text_data if text_data is not None else (bytes_data or b"")
        if self.handing:
            owner, self.handing = self.handing, ""
            if item != packets.PING + "probe":
                await self.close()  # a WebSocket for a long-polling session probes first
                return
            if await self._take_over(owner):
                return
            if not await self._relay(owner):  # refused: the session stays on its worker
                await self.close()
                return
        if self.transport is not None:
            await self.transport.from_websocket(self, item)
        elif self.relay:
            args = {"sid": self.sid, "relay": self.relay, "item": item}
            if not await self.node.requests.tell(self.owner_channel, RELAY_IN, args):
                await self.close()  # the session's worker is gone

    # ---- the Sink the session writes to --------------------------------------------------

    async def write(self, item: payload.Item) -> None:
        self.queue.put_nowait(item)

    def end(self) -> None:
        self.queue.put_nowait(None)

    async def _write_queued(self) -> None:
        """One writer per WebSocket: packets leave in the order the session wrote them; a
        client that does not read them is cut off as any other (rooms.server.backpressure)."""
        while (item := await self.queue.get()) is not None:
            key = "text" if isinstance(item, str) else "bytes"
            await self.base_send({"type": "websocket.send", key: item})
            outgoing = self.outgoing
            if outgoing is not None and outgoing.queued() > settings.SOCKETIO_MAX_BUFFERED_BYTES:
                outgoing.abort()
                break
        await self.close()

    # ---- the end -------------------------------------------------------------------------

    async def websocket_disconnect(self, message: dict[str, Any]) -> None:
        self._gone()
        raise StopConsumer()

    def _gone(self) -> None:
        writer = getattr(self, "writer", None)
        if writer is not None and writer is not asyncio.current_task():
            writer.cancel()
        if self.transport is not None:
            transport, self.transport = self.transport, None
            transport.detach(self)
        elif self.relay and RELAYS.pop(self.relay, None) is not None:
            args = {"sid": self.sid, "relay": self.relay}
            asyncio.ensure_future(self.node.requests.tell(self.owner_channel, RELAY_GONE, args))


class RelayedWebSocket:
    """The Sink, on the session's worker, of a WebSocket another worker relays."""

    def __init__(self, node: WorkerNode, sid: str, args: dict[str, Any]) -> None:
        self.node, self.sid = node, sid
        self.procid, self.channel, self.relay = args["procid"], args["channel"], args["relay"]

    async def write(self, item: payload.Item) -> None:
        await self.node.requests.tell(self.channel, RELAY_OUT, {"relay": self.relay, "item": item})

    def end(self) -> None:
        RELAYED.pop(self.relay, None)
        asyncio.ensure_future(
            self.node.requests.tell(self.channel, RELAY_CLOSE, {"relay": self.relay})
        )


RELAYED: dict[str, RelayedWebSocket] = {}
"""The relayed WebSockets attached to this worker's sessions, by relay id."""


def serve_upgrades(node: WorkerNode, *, hand_over: bool) -> None:
    """Both ends of a relay and of a handover, on this worker's node; `hand_over`: whether
    upgrades landing on another worker hand the session over (the bus's own layer)."""
    global HANDS_OVER
    HANDS_OVER = hand_over

    async def upgrade(args: dict[str, Any]) -> bool:
        transport = SESSIONS.get(args["sid"])
        websocket = RelayedWebSocket(node, args["sid"], args)
        if transport is None or not transport.attach(websocket):
            return False
        RELAYED[args["relay"]] = websocket
        return True

    def relay_in(args: dict[str, Any]) -> None:
        transport, websocket = SESSIONS.get(args["sid"]), RELAYED.get(args["relay"])
        if transport is not None and websocket is not None:
            transport.in_order(websocket, args["item"])

    def relay_gone(args: dict[str, Any]) -> None:
        transport, websocket = SESSIONS.get(args["sid"]), RELAYED.pop(args["relay"], None)
        if transport is not None and websocket is not None:
            transport.detach(websocket)

    def relay_out(args: dict[str, Any]) -> None:
        consumer = RELAYS.get(args["relay"])
        if consumer is not None:
            consumer.queue.put_nowait(args["item"])

    def relay_close(args: dict[str, Any]) -> None:
        consumer = RELAYS.get(args["relay"])
        if consumer is not None:
            consumer.end()

    async def upgradable(args: dict[str, Any]) -> bool:
        transport = SESSIONS.get(args["sid"])
        return transport is not None and transport.upgradable()

    async def handover(args: dict[str, Any]) -> dict[str, Any]:
        """A session of this worker goes to the worker its WebSocket landed on: its state
        now; its queue once each of its rooms' marks came through (WorkerNode.move_out)."""
        sid, procid, channel = args["sid"], args["procid"], args["channel"]
        transport = SESSIONS.get(sid)
        if transport is None:
            raise ValueError("no such session here")
        refusal = transport.handover_refusal()
        if refusal is not None:
            raise ValueError(refusal)
        state = transport.hand_over(procid)

        def aborted() -> None:
            """The session closes here before it was shipped: the taker tells the rooms
            this worker gave the socket up in, this worker those it still holds it in."""
            id_socket = state.get("id_socket")
            sock = node.registry.get(id_socket) if id_socket else None
            left = sorted(set(state.get("rooms", ())) - (sock.rooms if sock else set()))
            message = {"sid": sid, "left": left}
            _spawn(node.requests.tell(channel, HANDOVER_ABORT, message))

        async def ship() -> None:
            items = await transport.ship()
            id_socket = state.get("id_socket")
            served = node.fanout.served_to(id_socket) if id_socket else []
            message = {"sid": sid, "items": items, "served": served}
            message["deferred"] = transport.deferred
            if not await node.requests.tell(channel, HANDOVER_QUEUE, message):
                logger.info("handover of %s: its taker %s is gone", sid, procid)

        async def watch() -> None:
            """A taker that never completes (gone, or its marks lost): the session ends
            here, its rooms told, rather than be left in between."""
            await asyncio.sleep(HANDOVER_WITHIN)
            if not transport.moved and transport.moving_to is not None:
                logger.info("handover of %s to %s not done in time: closing it", sid, procid)
                await transport.close_session()

        transport.move_aborted = aborted
        _spawn(watch())
        id_socket = state.get("id_socket")
        if id_socket is not None:
            node.move_out(id_socket, procid, lambda: _spawn(ship()))
        else:
            asyncio.get_running_loop().call_soon(lambda: _spawn(ship()))
        return state

    def handover_queue(args: dict[str, Any]) -> None:
        arrival = ARRIVALS.get(args["sid"])
        if arrival is not None:
            arrival.shipped(list(args["items"]), list(args["served"]), list(args["deferred"]))

    def handover_abort(args: dict[str, Any]) -> None:
        arrival = ARRIVALS.get(args["sid"])
        if arrival is not None:
            arrival.fail("the session closed on its worker", list(args.get("left", ())))

    def worker_down(procid: str) -> None:
        """A relay's other end died: its WebSockets close here (the clients reconnect at
        once, not after their ping timeout), its sessions close there (no ghost in rosters).
        A session being handed over from it is closed here."""
        for arrival in [a for a in ARRIVALS.values() if a.owner == procid]:
            arrival.fail(f"worker {procid} is down")
        for moving in [t for t in SESSIONS.values() if t.moving_to == procid and not t.moved]:
            _spawn(moving.close_session())  # handed to a worker that died meanwhile
        for consumer in [c for c in RELAYS.values() if c.owner == procid]:
            consumer.end()
        for relay, websocket in list(RELAYED.items()):
            if websocket.procid == procid:
                del RELAYED[relay]
                transport = SESSIONS.get(websocket.sid)
                if transport is not None:
                    transport.detach(websocket)

    node.worker_down_listeners.append(worker_down)
    node.requests.serve(UPGRADE, upgrade)
    node.requests.serve(UPGRADABLE, upgradable)
    node.requests.serve(HANDOVER, handover)
    for kind, listener in (
        (HANDOVER_QUEUE, handover_queue),
        (HANDOVER_ABORT, handover_abort),
        (RELAY_IN, relay_in),
        (RELAY_GONE, relay_gone),
        (RELAY_OUT, relay_out),
        (RELAY_CLOSE, relay_close),
    ):
        node.requests.listen(kind, listener)
