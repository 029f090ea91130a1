"""The Socket.IO endpoint: Engine.IO messages <-> Socket.IO packets <-> the worker node.

Glue only: the Engine.IO session and its transports are rooms.socketio.websocket's and
rooms.socketio.polling's (which these classes extend, filling in the hooks of
rooms.socketio.transport), the wire format rooms.socketio.codec,
the bookkeeping the cluster node's (from the ASGI scope, rooms.runtime), the rules about
users users.services. Errors become replies in one place (`protocol_error`). Every task it
starts is cancelled in `_forget`.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from typing import Any

from channels.db import database_sync_to_async
from django.conf import settings

from identity_playground.client_address import client_address
from rooms.bus.directory import ClusterUnavailable
from rooms.cluster.known_users import KNOWN_USERS
from rooms.cluster.names import InvalidRoom, validate_room
from rooms.cluster.node import WorkerNode
from rooms.cluster.registry import LocalSocket
from rooms.metrics.series import EVENTS_RECEIVED, LIMIT_CLOSES
from rooms.socketio import codec
from rooms.socketio.limits import ConnectionsPerAddress, TokenBucket
from rooms.socketio.polling import PollingTransport
from rooms.socketio.transport import Transport
from rooms.socketio.websocket import WebSocketTransport
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


def new_socket_id() -> str:
    """20 URL-safe characters, like socket.io's ids."""
    return secrets.token_urlsafe(15)


@database_sync_to_async
def user_exists(id_user: object) -> str | None:
    """The canonical id_user if such a user exists, else None."""
    try:
        return services.user_get(id_user=id_user).id_user
    except services.UserNotFound:
        return None


class SocketIOSocket(Transport[codec.Packet]):
    """The Socket.IO rules for one socket, over whichever Engine.IO transport carries it."""

    node: WorkerNode
    sid: str | None = None  # the Socket.IO socket id, once CONNECT succeeded
    id_user: str | None = None
    # A BINARY_EVENT or BINARY_ACK whose attachments are still arriving, those that came,
    # and the bytes of both so far (all of it counts against maxPayload, as one message).
    binary_head: codec.BinaryHead | None = None
    attachments: list[bytes]
    binary_size = 0
    address: str | None = None  # counted in OPEN_CONNECTIONS while this connection is open

    async def admit(self) -> bool:
        try:
            self.node = await self.scope["cluster"].node()
        except ClusterUnavailable as exc:
            logger.warning("refusing /socket.io/ connection: %s", exc)
            return False
        address = scope_address(self.scope)
        per_minute = settings.SOCKETIO_CONNECT_REFUSALS_PER_MINUTE
        if ratelimit.REFUSED_CONNECTS.exhausted(address, per_minute):
            logger.info("refusing /socket.io/ connection: too many refused CONNECTs")
            LIMIT_CLOSES.labels("connect_refusals").inc()
            return False
        if not OPEN_CONNECTIONS.admit(address, settings.SOCKETIO_MAX_CONNECTIONS_PER_ADDRESS):
            logger.info("refusing /socket.io/ connection: too many from one address")
            LIMIT_CLOSES.labels("connections_per_address").inc()
            return False
        self.address = address
        return True

    async def opened(self) -> None:
        self.identity_budget = TokenBucket(settings.SOCKETIO_IDENTITY_CHANGE_RATE)
        # bytes x rooms a second that its identity-changes may make the cluster carry (one
        # room message per room, rooms.cluster.fanout)
        self.fanout_budget = TokenBucket(settings.SOCKETIO_FANOUT_BYTES_PER_SECOND)
        self.connect_refusals = 0
        self._tasks = [asyncio.create_task(self._expect_connect())]

    async def protocol_error(self, error: codec.ProtocolError, text_data: str | None) -> None:
        if isinstance(error, codec.RefusedPayload) and await self.refuse_payload(error):
            return
        self.log.info("closing %s: %s", self.sid or self._eio_sid, error)
        LIMIT_CLOSES.labels("protocol_error").inc()
        if self.sid is not None:  # a connected socket is told why
            await self._emit("error", {"message": f"{error}: disconnecting"})
        elif text_data is not None and text_data.startswith("40"):  # so is a CONNECT
            await self._send_packet(codec.ConnectError(f"{error}: disconnecting"))
        await self.close_session()

    async def farewell(self, message: str) -> None:
        if self.sid is not None:
            await self._emit("error", {"message": message})

    def decode_message(
        self, text_data: str | None, bytes_data: bytes | None
    ) -> codec.Packet | None:
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

    def released(self) -> None:
        """The address's count (the socket is forgotten next, in `session_closed`)."""
        if self.address is not None:
            OPEN_CONNECTIONS.release(self.address)
            self.address = None

    def session_closed(self) -> None:
        self._forget()

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
            case codec.Connect():
                await self.on_connect_packet(packet)
            case codec.Event() if self.sid is not None and packet.namespace == "/":
                await self.on_event(packet)
            case codec.Disconnect() if self.sid is not None:
                await self.close_session()
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
        self.hold()
        self.node.add(
            LocalSocket(
                id_socket=self.sid,
                id_user=id_user,
                deliver=self.deliver,
                deliver_now=self.deliver_now,
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
        await self.release_held()
        if room is not None:
            await self._announce_arrival(room, self.sid)

    async def _refuse_connect(self, message: str, namespace: str = codec.DEFAULT_NAMESPACE) -> None:
        """CONNECT_ERROR; after SOCKETIO_MAX_CONNECT_ATTEMPTS refusals on one connection
        the connection is closed too (a client trying user after user costs lookups), and
        so it is once its address has had SOCKETIO_CONNECT_REFUSALS_PER_MINUTE refusals on
        this worker (many connections trying users)."""
        per_minute = settings.SOCKETIO_CONNECT_REFUSALS_PER_MINUTE
        if ratelimit.REFUSED_CONNECTS.retry_after(self.address or "", per_minute):
            self.log.info("closing %s: too many refused CONNECTs from its address", self._eio_sid)
            LIMIT_CLOSES.labels("connect_refusals").inc()
            message = "too many refused CONNECTs from this address"
            await self._send_packet(codec.ConnectError(message, namespace))
            await self.close_session()
            return
        await self._send_packet(codec.ConnectError(message, namespace))
        self.connect_refusals += 1
        if self.connect_refusals >= settings.SOCKETIO_MAX_CONNECT_ATTEMPTS:
            self.log.info("closing %s: %d CONNECTs refused", self._eio_sid, self.connect_refusals)
            LIMIT_CLOSES.labels("connect_attempts").inc()
            await self.close_session()

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

    async def _expect_connect(self) -> None:
        """A client that never sends CONNECT does not hold a connection forever."""
        await asyncio.sleep(settings.SOCKETIO_CONNECT_TIMEOUT_S)
        if self.sid is None:
            self.log.info("closing %s: no CONNECT packet in time", self._eio_sid)
            LIMIT_CLOSES.labels("connect_timeout").inc()
            await self.close_session()

    # ---- sending and forgetting ---------------------------------------------------------

    async def _send_packet(self, packet: codec.Packet) -> None:
        await self.send_text(codec.encode(packet))

    async def _emit(self, name: str, *args: Any) -> None:
        await self.send_text(codec.encode_event(name, *args))

    @property
    def _eio_sid(self) -> str:
        """The Engine.IO session's id, which names this connection in logs until CONNECT."""
        assert self.session is not None  # from the handshake on, as every caller is
        return self.session.sid

    def _query(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None

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


class SocketIOConsumer(SocketIOSocket, WebSocketTransport[codec.Packet]):
    """A socket that opened over a WebSocket (`transports: ["websocket"]`)."""


class SocketIOPolling(SocketIOSocket, PollingTransport[codec.Packet]):
    """A socket that opened over long-polling (the official clients' default)."""
