"""A WebSocket that upgrades a long-polling session, on the session's worker or any other.

The client opens `/socket.io/?EIO=4&transport=websocket&sid=<sid>`, sends PING "probe",
waits for PONG "probe", then sends UPGRADE: from then on the session's packets go over this
WebSocket (https://github.com/socketio/engine.io-protocol, "Upgrade"). The session stays on
the worker that opened it (rooms.socketio.polling). A WebSocket that lands there carries its
packets directly; one that lands on another worker relays them over the bus, both ways, one
message per packet, in order. So the socket keeps its id, its rooms and its place in rosters
through the upgrade: nothing is announced, nothing moves, nothing is delivered twice.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from typing import Any
from urllib.parse import parse_qs

from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from rooms.bus.directory import ClusterUnavailable
from rooms.cluster.node import WorkerNode
from rooms.cluster.requests import WorkerUnavailable
from rooms.engineio import payload, sids
from rooms.server import backpressure
from rooms.socketio.dispatch import DirectDispatch
from rooms.socketio.polling import SESSIONS, PollingTransport, sid_key

logger = logging.getLogger(__name__)

# what the session's worker and a relaying worker tell each other (rooms.cluster.requests)
UPGRADE = "eio.upgrade"  # request {sid, channel, relay}: attach the relay; answer True if so
RELAY_IN = "eio.relay-in"  # {sid, relay, item}: a packet from the client
RELAY_GONE = "eio.relay-gone"  # {sid, relay}: the relayed WebSocket closed
RELAY_OUT = "eio.relay-out"  # {relay, item}: a packet for the client
RELAY_CLOSE = "eio.relay-close"  # {relay}: the session is over, close the WebSocket

RELAYS: dict[str, UpgradeConsumer] = {}
"""The WebSockets this worker relays for sessions of other workers, by relay id."""


class UpgradeConsumer(DirectDispatch, AsyncWebsocketConsumer):
    """The WebSocket of an upgrade; its packets go to the session's worker."""

    transport: PollingTransport[Any] | None = None  # the session, when it is this worker's
    relay = ""  # the relay id, when the session is another worker's
    owner = ""  # that worker's procid
    owner_channel = ""
    outgoing: backpressure.Outgoing | None = None

    async def connect(self) -> None:
        query = parse_qs(self.scope.get("query_string", b"").decode("latin-1"))
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
        if owner == node.procid:
            transport = SESSIONS.get(sid)
            if transport is None or not transport.attach(self):
                await self.close()
                return
            self.transport = transport
        elif owner is not None:
            self.relay, self.owner = secrets.token_hex(8), owner
            RELAYS[self.relay] = self
            args = {"sid": sid, "channel": node.channel, "relay": self.relay}
            args["procid"] = node.procid
            try:
                attached = await node.ask_worker(owner, UPGRADE, args, within=5.0)
                self.owner_channel = node.channel_of(owner) or ""
            except WorkerUnavailable as exc:
                logger.info("no upgrade for %s: %s", sid, exc)
                attached = False
            if not attached:
                RELAYS.pop(self.relay, None)
                await self.close()
                return
        else:
            await self.close()
            return
        await self.accept()
        self.outgoing = backpressure.outgoing(self.base_send)
        self.writer = asyncio.create_task(self._write_queued())

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        item: payload.Item = text_data if text_data is not None else (bytes_data or b"")
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


def serve_upgrades(node: WorkerNode) -> None:
    """Both ends of a relay, on this worker's node."""

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

    def worker_down(procid: str) -> None:
        """A relay's other end died: its WebSockets close here (the clients reconnect at
        once, not after their ping timeout), its sessions close there (no ghost in rosters)."""
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
    for kind, listener in (
        (RELAY_IN, relay_in),
        (RELAY_GONE, relay_gone),
        (RELAY_OUT, relay_out),
        (RELAY_CLOSE, relay_close),
    ):
        node.requests.listen(kind, listener)
