"""The Socket.IO endpoint: WebSocket frames <-> protocol packets <-> the worker node.

Glue only: the wire format is rooms.socketio.codec, the bookkeeping the cluster node's
(from the ASGI scope, rooms.runtime), the rules about users users.services. Errors become
replies in one place (`receive`). Every task it starts is cancelled in `_forget`.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from typing import Any
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from identity_playground.client_address import client_address
from rooms.bus.directory import ClusterUnavailable
from rooms.cluster.known_users import KNOWN_USERS
from rooms.cluster.names import InvalidRoom, validate_room
from rooms.cluster.node import WorkerNode
from rooms.cluster.registry import LocalSocket
from rooms.metrics.series import EVENTS_RECEIVED, LIMIT_CLOSES
from rooms.server import backpressure, ws_frame_budget
from rooms.server.ws_frames import FrameWriter, frame_writer
from rooms.socketio import codec
from rooms.socketio.dispatch import DirectDispatch
from rooms.socketio.limits import ConnectionsPerAddress, TokenBucket
from users import identity, ratelimit, services

logger = logging.getLogger(__name__)


GONE = {"ok": False, "error": "socket is disconnecting"}
OPEN_CONNECTIONS = ConnectionsPerAddress()  # this worker's, by client address


def scope_address(scope: dict[str, Any]) -> str:
    """The address this connection counts against (identity_playground.client_address)."""
    client = scope.get("client")
    forwarded = dict(scope.get("headers", ())).get(b"x-forwarded-for")
    return client_address(
        str(client[0]) if client else None,
        forwarded.decode("latin-1") if forwarded else None,
    )


def dropped(text: str) -> bool:
    """The FrameWriter of a connection that was cut off: every frame goes nowhere."""
    return True


def new_socket_id() -> str:
    """20 URL-safe characters, like socket.io's ids."""
    return secrets.token_urlsafe(15)


def handshake_refusal(query: dict[str, list[str]]) -> str | None:
    """Why a /socket.io/ connection cannot be served, or None: EIO=4 over WebSocket only."""
    if query.get("transport", [""])[0] != "websocket":
        return "Transport unknown"
    if query.get("EIO", [""])[0] != "4":
        return "Unsupported protocol version"
    return None


@database_sync_to_async
def user_exists(id_user: object) -> str | None:
    """The canonical id_user if such a user exists, else None."""
    try:
        return services.user_get(id_user=id_user).id_user
    except services.UserNotFound:
        return None


class SocketIOConsumer(DirectDispatch, AsyncWebsocketConsumer):
    node: WorkerNode
    sid: str | None = None  # the Socket.IO socket id, once CONNECT succeeded
    closing = False  # we closed the connection; frames still queued behind that are dropped
    id_user: str | None = None
    # Frames for this socket that arrived before its CONNECT reply and handshake went out
    # (room events during the room subscription at CONNECT); None once those are sent.
    held: list[codec.Frame] | None = None
    # A BINARY_EVENT or BINARY_ACK whose attachments are still arriving, those that came,
    # and the bytes of both so far (all of it counts against maxPayload, as one message).
    binary_head: codec.BinaryHead | None = None
    attachments: list[bytes]
    binary_size = 0
    write_frame: FrameWriter | None = None  # under daphne: text frames bypass the ASGI send
    address: str | None = None  # counted in OPEN_CONNECTIONS while this connection is open
    # Under daphne: what the connection has queued to send, checked after every frame
    # against SOCKETIO_MAX_BUFFERED_BYTES (a client that does not read is cut off there).
    outgoing: backpressure.Outgoing | None = None
    max_buffered = 0
    frame_budget: TokenBucket | None = None  # None where the server counts every frame

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        """Whatever ends the instance, its socket is forgotten and its address released:
        a close runs `disconnect`, but daphne cancels an instance still running
        `application_close_timeout` after its client left, in whatever it was awaiting."""
        try:
            await self.dispatch_from_client(scope, receive, send)
        finally:
            self._release()

    async def connect(self) -> None:
        self.query = parse_qs(self.scope.get("query_string", b"").decode("latin-1"))
        self._tasks: list[asyncio.Task[None]] = []
        refusal = handshake_refusal(self.query)
        if refusal:
            logger.info("refusing /socket.io/ connection: %s", refusal)
            await self.close()
            return
        try:
            self.node = await self.scope["cluster"].node()
        except ClusterUnavailable as exc:
            logger.warning("refusing /socket.io/ connection: %s", exc)
            await self.close()
            return
        address = scope_address(self.scope)
        per_minute = settings.SOCKETIO_CONNECT_REFUSALS_PER_MINUTE
        if ratelimit.REFUSED_CONNECTS.exhausted(address, per_minute):
            logger.info("refusing /socket.io/ connection: too many refused CONNECTs")
            LIMIT_CLOSES.labels("connect_refusals").inc()
            await self.close()
            return
        if not OPEN_CONNECTIONS.admit(address, settings.SOCKETIO_MAX_CONNECTIONS_PER_ADDRESS):
            logger.info("refusing /socket.io/ connection: too many from one address")
            LIMIT_CLOSES.labels("connections_per_address").inc()
            await self.close()
            return
        self.address = address
        self.eio_sid = new_socket_id()
        # what this connection's log records are about (LOG_FORMAT=json shows it as a field)
        self.log_fields = {"socket": self.eio_sid}
        self.log = logging.LoggerAdapter(logger, self.log_fields)
        self.pong = asyncio.Event()
        self.identity_budget = TokenBucket(settings.SOCKETIO_IDENTITY_CHANGE_RATE)
        # bytes x rooms a second that its identity-changes may make the cluster carry (one
        # room message per room, rooms.cluster.fanout)
        self.fanout_budget = TokenBucket(settings.SOCKETIO_FANOUT_BYTES_PER_SECOND)
        # characters of frames: one frame of the largest size at once, then the rate
        byte_rate = settings.SOCKETIO_BYTE_RATE
        self.byte_budget = TokenBucket(
            byte_rate, burst=max(settings.SOCKETIO_MAX_PAYLOAD, 2 * byte_rate)
        )
        self.connect_refusals = 0
        await self.accept()
        self.write_frame = frame_writer(self.base_send)
        # frames are counted as they arrive where runcluster's workers count them all
        # (rooms.server.ws_frame_budget, fragments and pings included); else here, per message
        if not ws_frame_budget.notify_in_order(self.base_send):
            rate = settings.SOCKETIO_FRAME_RATE
            self.frame_budget = TokenBucket(rate, burst=2 * rate)
        self.outgoing = backpressure.outgoing(self.base_send)
        self.max_buffered = settings.SOCKETIO_MAX_BUFFERED_BYTES
        await self._send_packet(
            codec.Open(
                sid=self.eio_sid,
                ping_interval=settings.SOCKETIO_PING_INTERVAL_MS,
                ping_timeout=settings.SOCKETIO_PING_TIMEOUT_MS,
                max_payload=settings.SOCKETIO_MAX_PAYLOAD,
            )
        )
        self._tasks = [
            asyncio.create_task(self._heartbeat()),
            asyncio.create_task(self._expect_connect()),
        ]

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.closing:  # else a queued CONNECT would register a socket on a closed connection
            return
        if self.frame_budget is not None and not self.frame_budget.take():
            await self._over_budget("frame")
            return
        if not self.byte_budget.take(len(text_data or bytes_data or "")):
            await self._over_budget("byte")
            return
        try:
            packet = self._packet(text_data, bytes_data)
            if packet is not None:
                await self.handle(packet)
        except codec.ProtocolError as exc:
            if isinstance(exc, codec.RefusedPayload) and await self.refuse_payload(exc):
                return
            self.log.info("closing %s: %s", self.sid or self.eio_sid, exc)
            LIMIT_CLOSES.labels("protocol_error").inc()
            if self.sid is not None:  # a connected socket is told why
                await self._emit("error", {"message": f"{exc}: disconnecting"})
            elif text_data is not None and text_data.startswith("40"):  # so is a CONNECT
                await self._send_packet(codec.ConnectError(f"{exc}: disconnecting"))
            await self._close()

    def _packet(self, text_data: str | None, bytes_data: bytes | None) -> codec.Packet | None:
        """The packet a frame completes, or None while a binary packet's attachments are
        still coming: a text frame is a packet, or the head of a binary one; each binary
        frame is the next attachment of the head before it (socket.io-parser refuses
        text in between, and so do we)."""
        max_payload = settings.SOCKETIO_MAX_PAYLOAD
        if text_data is None:
            head = self.binary_head
            if head is None:
                raise codec.ProtocolError("a binary frame that no binary packet announced")
            self.binary_size += len(bytes_data or b"")
            if self.binary_size > max_payload:
                raise codec.ProtocolError(f"binary packet exceeds maxPayload {max_payload}")
            self.attachments.append(bytes_data or b"")
            if len(self.attachments) < head.attachments:
                return None
            attachments, self.binary_head, self.attachments = self.attachments, None, []
            return codec.assemble(head, attachments)
        if self.binary_head is not None:
            raise codec.ProtocolError("a text frame where a binary attachment was expected")
        packet = codec.decode(text_data, max_payload=max_payload)
        if isinstance(packet, codec.BinaryHead):
            if self.sid is None or packet.namespace != codec.DEFAULT_NAMESPACE:
                # refused now, as its EVENT or ACK would be, not after its attachments
                raise codec.ProtocolError(
                    f"unexpected binary packet on namespace {packet.namespace}"
                )
            self.binary_head, self.attachments = packet, []
            self.binary_size = len(text_data)
            return None
        return packet

    async def disconnect(self, code: int) -> None:
        self._release()

    def _release(self) -> None:
        """The address's count first, then the socket: neither waits on anything (what its
        leaving costs the cluster is paid by the node's departures task)."""
        if self.address is not None:
            OPEN_CONNECTIONS.release(self.address)
            self.address = None
        self._forget()

    async def _over_budget(self, unit: str) -> None:
        """More frames than SOCKETIO_FRAME_RATE allows, or more bytes than
        SOCKETIO_BYTE_RATE (each costs a decode, and events cost the cluster more): the
        client is told why, then disconnected."""
        self.log.info("closing %s: over its %s budget", self.sid or self.eio_sid, unit)
        LIMIT_CLOSES.labels(f"{unit}_rate").inc()
        if self.sid is not None:
            await self._emit("error", {"message": f"too many {unit}s: disconnecting"})
        await self._close()

    async def websocket_over_budget(self, message: dict[str, Any]) -> None:
        """More WebSocket frames than SOCKETIO_FRAME_RATE allows, counted as they arrive
        (rooms/server/ws_frame_budget.py: fragments and pings included, which never reach
        `receive`); the server reads nothing more from this client."""
        if not self.closing:
            await self._over_budget("frame")

    async def websocket_disconnect(self, message: dict[str, Any]) -> None:
        """Channels' own minus its `aclose_old_connections()` thread hop on every close
        (see rooms.socketio.dispatch; 1.3% of a connect storm's CPU) and its group discards (these
        sockets are in no Channels group)."""
        await self.disconnect(message["code"])
        raise StopConsumer()

    async def refuse_payload(self, error: codec.RefusedPayload) -> bool:
        """A packet that cannot be passed on is answered where the client waits for an
        answer, and changes nothing: CONNECT_ERROR for a CONNECT, a `{"ok": false}` ack
        for an event that asked for one, an `error` event for a connected socket. False
        when there is nobody to answer (the connection is then closed as for any other
        protocol error)."""
        message = str(error)
        if error.kind == "0":
            await self._refuse_connect(message, error.namespace)
        elif error.kind == "2" and error.ack_id is not None and self.sid is not None:
            reply = {"ok": False, "error": message}
            await self._send_packet(codec.Ack((reply,), error.ack_id, error.namespace))
        elif self.sid is not None:
            await self._emit("error", {"message": message})
        else:
            return False
        return True

    # ---- packets ------------------------------------------------------------------------

    async def handle(self, packet: codec.Packet) -> None:
        match packet:
            case codec.Pong():
                self.pong.set()
            case codec.Ping(data=data):
                await self._send_packet(codec.Pong(data))
            case codec.Close():
                await self._close()
            case codec.Connect():
                await self.on_connect_packet(packet)
            case codec.Event() if self.sid is not None and packet.namespace == "/":
                await self.on_event(packet)
            case codec.Disconnect() if self.sid is not None:
                await self._close()
            case codec.Ack() if self.sid is not None:
                pass  # this server never asks clients for acks
            case _:
                where = getattr(packet, "namespace", codec.DEFAULT_NAMESPACE)
                kind = type(packet).__name__
                raise codec.ProtocolError(f"unexpected {kind} packet on namespace {where}")

    async def on_connect_packet(self, packet: codec.Connect) -> None:
        if packet.namespace != codec.DEFAULT_NAMESPACE:
            await self._refuse_connect("Invalid namespace", packet.namespace)
            return
        if self.sid is not None:
            raise codec.ProtocolError("CONNECT on an already connected namespace")
        auth = packet.auth or {}
        raw_user = auth.get("id_user", self._query("id_user"))
        raw_room = auth.get("room", self._query("room"))
        unknown = "Unknown id_user: {}"
        if identity.signed_mode():
            try:
                raw_user = identity.connect_identity(auth, self._query("id_user"))
            except identity.InvalidIdentity as exc:
                await self._refuse_connect(str(exc))
                return
            unknown = "Token for a user that no longer exists: {}"
        if raw_user in (None, ""):
            await self._refuse_connect("Missing id_user")
            return
        if len(raw_user if isinstance(raw_user, str) else str(raw_user)) > services.MAX_ID_DIGITS:
            # names nobody, and is not echoed back whole
            await self._refuse_connect(f"id_user longer than {services.MAX_ID_DIGITS} characters")
            return
        pk = services.parse_id_user(raw_user)
        key = None if pk is None else str(pk)
        id_user = key if key is not None and key in KNOWN_USERS else None
        if id_user is None:
            if key is not None and not KNOWN_USERS.is_missing(key):
                id_user = await user_exists(raw_user)
                if self.closing:  # a heartbeat or CONNECT timeout closed us during the lookup
                    return
            if id_user is None:
                if key is not None:
                    KNOWN_USERS.remember_missing(key)
                await self._refuse_connect(unknown.format(raw_user))
                return
            KNOWN_USERS.remember(id_user)
        room = None
        if raw_room not in (None, ""):
            try:
                room = validate_room(raw_room)
            except InvalidRoom as exc:
                await self._refuse_connect(str(exc))
                return
        self.sid, self.id_user = new_socket_id(), id_user
        self.log_fields["socket"] = self.sid
        self.held = []
        self.node.add(
            LocalSocket(
                id_socket=self.sid,
                id_user=id_user,
                deliver=self._deliver,
                deliver_now=self._deliver_now,
            )
        )
        if room is not None:
            # subscribed before the client hears it is connected: from its handshake on,
            # it receives every event of the room (those arriving meanwhile are held)
            await self.node.join(self.sid, room)
            if self._local_socket() is None:  # closed meanwhile (heartbeat, protocol error)
                return
        await self._send_packet(codec.Connect({"sid": self.sid}))
        await self._emit("handshake", {"procid": self.node.procid})
        await self._release_held()
        if room is not None:
            await self._announce_arrival(room, self.sid)

    async def _refuse_connect(self, message: str, namespace: str = codec.DEFAULT_NAMESPACE) -> None:
        """CONNECT_ERROR; after SOCKETIO_MAX_CONNECT_ATTEMPTS refusals on one connection
        the connection is closed too (a client trying user after user costs lookups), and
        so it is once its address has had SOCKETIO_CONNECT_REFUSALS_PER_MINUTE refusals on
        this worker (many connections trying users)."""
        per_minute = settings.SOCKETIO_CONNECT_REFUSALS_PER_MINUTE
        if ratelimit.REFUSED_CONNECTS.retry_after(self.address or "", per_minute):
            self.log.info("closing %s: too many refused CONNECTs from its address", self.eio_sid)
            LIMIT_CLOSES.labels("connect_refusals").inc()
            message = "too many refused CONNECTs from this address"
            await self._send_packet(codec.ConnectError(message, namespace))
            await self._close()
            return
        await self._send_packet(codec.ConnectError(message, namespace))
        self.connect_refusals += 1
        if self.connect_refusals >= settings.SOCKETIO_MAX_CONNECT_ATTEMPTS:
            self.log.info("closing %s: %d CONNECTs refused", self.eio_sid, self.connect_refusals)
            LIMIT_CLOSES.labels("connect_attempts").inc()
            await self._close()

    async def on_event(self, event: codec.Event) -> None:
        EVENTS_RECEIVED.inc()
        arg = event.args[0] if event.args else None
        match event.name:
            case "join" | "leave":
                reply = await self._join_or_leave(event.name, arg)
            case "identity-change":
                reply = await self._identity_change(arg)
            case _:
                reply = {"ok": False, "error": f"unknown event: {event.name}"}
        if event.ack_id is not None:
            await self._send_packet(codec.Ack((reply,), event.ack_id))

    async def _join_or_leave(self, action: str, raw_room: object) -> dict[str, Any]:
        try:
            room = validate_room(raw_room)
        except InvalidRoom as exc:
            return {"ok": False, "error": str(exc)}
        return await (self._join(room) if action == "join" else self._leave(room))

    async def _identity_change(self, payload: object) -> dict[str, Any]:
        if not self.identity_budget.take():
            message = "identity-change rate limit exceeded: event dropped"
            await self._emit("error", {"message": message})
            return {"ok": False, "error": message}
        body = dict(payload) if isinstance(payload, dict) else {}
        body["id_user"] = self.id_user  # stamped by the server, never trusted from the client
        sock = self._local_socket()
        if sock is None:
            return GONE
        if sock.rooms:
            frame = codec.encode_event_frame("identity-change", body)
            size = codec.frame_size(frame)  # what Redis carries per room
            if not self.fanout_budget.take(size * len(sock.rooms)):
                message = "identity-change fan-out budget exceeded: event dropped"
                await self._emit("error", {"message": message})
                return {"ok": False, "error": message}
            await self.node.emit_to_rooms(sorted(sock.rooms), frame, except_socket=sock.id_socket)
        return {"ok": True}

    # ---- rooms --------------------------------------------------------------------------
    # Each checks the socket is still registered: a heartbeat or protocol error may have
    # dropped it while an earlier await of the same handler was pending.

    async def _join(self, room: str) -> dict[str, Any]:
        sock = self._local_socket()
        if sock is None:
            return GONE
        if room not in sock.rooms:
            limit = settings.SOCKETIO_MAX_ROOMS_PER_SOCKET
            if len(sock.rooms) >= limit:
                # each room a socket is in costs every event it sends one more message
                return {"ok": False, "error": f"a socket may be in at most {limit} rooms"}
            await self.node.join(sock.id_socket, room)
            await self._announce_arrival(room, sock.id_socket)
        return {"ok": True}

    async def _announce_arrival(self, room: str, id_socket: str) -> None:
        """socket-connected to the room's other members."""
        frame = codec.encode_event("socket-connected", id_socket)
        await self.node.emit_to_rooms([room], frame, except_socket=id_socket)

    async def _leave(self, room: str) -> dict[str, Any]:
        sock = self._local_socket()
        if sock is None:
            return GONE
        if room in sock.rooms:
            self.node.leave(sock.id_socket, room)
            frame = codec.encode_event("socket-disconnected", sock.id_socket)
            await self.node.emit_to_rooms([room], frame)
        return {"ok": True}

    def _local_socket(self) -> LocalSocket | None:
        """This connection's registered socket, or None once it was forgotten."""
        return None if self.sid is None else self.node.registry.get(self.sid)

    # ---- background tasks ---------------------------------------------------------------

    async def _heartbeat(self) -> None:
        """Engine.IO v4: the server pings; no pong within pingTimeout closes the socket."""
        interval = settings.SOCKETIO_PING_INTERVAL_MS / 1000
        timeout = settings.SOCKETIO_PING_TIMEOUT_MS / 1000
        while True:
            await asyncio.sleep(interval)
            self.pong.clear()
            await self._send_packet(codec.Ping())
            try:
                await asyncio.wait_for(self.pong.wait(), timeout)
            except TimeoutError:
                self.log.info("closing %s: ping timeout", self.sid or self.eio_sid)
                LIMIT_CLOSES.labels("ping_timeout").inc()
                await self._close()
                return

    async def _expect_connect(self) -> None:
        """A client that never sends CONNECT does not hold a connection forever."""
        await asyncio.sleep(settings.SOCKETIO_CONNECT_TIMEOUT_S)
        if self.sid is None:
            self.log.info("closing %s: no CONNECT packet in time", self.eio_sid)
            LIMIT_CLOSES.labels("connect_timeout").inc()
            await self._close()

    # ---- sending and closing ------------------------------------------------------------

    def _deliver_now(self, frame: codec.Frame) -> bool:
        """The frame written at once, unless frames are held or it must take the ASGI path
        (then `_deliver` does it)."""
        if not isinstance(frame, str):
            return False  # a binary event's frames go together through `_deliver`
        if self.held is None and self.write_frame is not None and self.write_frame(frame):
            if self.outgoing is not None and self.outgoing.queued() > self.max_buffered:
                self._cut_off()
            return True
        return False

    async def _deliver(self, frame: codec.Frame) -> None:
        if self.held is not None:
            self.held.append(frame)
            return
        await self._send_frame(frame)

    async def _release_held(self) -> None:
        """Send the frames held during CONNECT, in order, before any later one."""
        while self.held:
            await self._send_frame(self.held.pop(0))
        self.held = None

    async def _send_frame(self, frame: codec.Frame) -> None:
        if isinstance(frame, str):
            await self._send_text(frame)
            return
        if self.write_frame is dropped:  # cut off: frames go nowhere
            return
        # a binary event: its text frame and attachments through the ASGI send, in order
        for part in frame:
            key = "text" if isinstance(part, str) else "bytes"
            await self.base_send({"type": "websocket.send", key: part})
        if self.outgoing is not None and self.outgoing.queued() > self.max_buffered:
            self._cut_off()

    async def _send_text(self, text: str) -> None:
        """One text frame: onto the connection itself where it can (rooms/server/ws_frames.py),
        else straight to the ASGI send (Channels' two send() layers in between add nothing
        here and cost a coroutine each, on every frame of every fan-out)."""
        if self.write_frame is None or not self.write_frame(text):
            await self.base_send({"type": "websocket.send", "text": text})
        if self.outgoing is not None and self.outgoing.queued() > self.max_buffered:
            self._cut_off()

    def _cut_off(self) -> None:
        """Close a connection whose client does not read what it is sent: its frames would
        wait in this worker without bound (issue 19). Forgotten like any other closed
        socket (its rooms hear socket-disconnected); the connection is aborted, not closed
        with a WebSocket close frame, which would only queue behind the rest."""
        if self.outgoing is None:
            return
        self.log.info(
            "closing %s: outgoing buffer over %d bytes", self.sid or self.eio_sid, self.max_buffered
        )
        LIMIT_CLOSES.labels("outgoing_buffer").inc()
        self.outgoing.abort()
        self.outgoing = None
        self.closing = True
        self.write_frame = dropped  # frames still handed to this socket go nowhere
        self._forget()

    async def _send_packet(self, packet: codec.Packet) -> None:
        await self._send_text(codec.encode(packet))

    async def _emit(self, name: str, *args: Any) -> None:
        await self._send_text(codec.encode_event(name, *args))

    def _query(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None

    async def _close(self) -> None:
        self.closing = True
        self._forget()
        await self.close()

    def _forget(self) -> None:
        """Cancel this socket's tasks and unregister it (its rooms hear
        `socket-disconnected` from the node); safe to repeat, awaits nothing."""
        current = asyncio.current_task()
        for task in getattr(self, "_tasks", ()):  # none before connect() ran
            if task is not current:
                task.cancel()
        self._tasks = []
        sid, self.sid = self.sid, None
        if sid is not None:
            self.node.remove(sid)
