"""HTTP on /socket.io/: Engine.IO long-polling on any worker, with no sticky sessions.

The handshake (GET without a sid) opens a session on the worker it lands on, and the sid
it gets names that worker, signed (rooms.engineio.sids). Every later GET or POST may land on
any worker sharing the port: the session's own worker serves it; any other asks that worker
over the bus and answers what it answered (rooms.cluster.requests), as Phoenix's long-poll
transport forwards to the node owning the session (lib/phoenix/transports/long_poll.ex).
A sid that does not verify, or names a worker that is gone, is 400 "Session ID unknown",
and the client opens a new session.

Requests go through the same Host check and HTTPS settings as every endpoint
(rooms.http.views.JsonHttpHandler) and the Origin check of a WebSocket handshake
(rooms.socketio.origin); a POST body over maxPayload is 413.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

from asgiref.typing import ASGIReceiveCallable, ASGISendCallable
from django.conf import settings

from rooms.cluster.requests import WorkerUnavailable
from rooms.engineio import handshake, sids
from rooms.http.views import JsonHttpHandler
from rooms.metrics.series import POLLING_REQUESTS
from rooms.socketio.origin import origin_allowed
from rooms.socketio.polling import (
    BAD_REQUEST,
    FORBIDDEN,
    SESSION_ID_UNKNOWN,
    SESSIONS,
    PollingTransport,
    Reply,
    error,
    sid_key,
)

logger = logging.getLogger(__name__)

NewSession = Callable[[dict[str, Any], dict[str, list[str]], str], PollingTransport[Any]]
"""(scope, query, sid) -> the session a handshake opens (the Socket.IO layer's class)."""

FORWARDED = "eio.request"  # a GET or POST one worker forwards to the session's worker
CONTENT_TOO_LARGE = error(413, 3, "Bad request")
FORWARD_MARGIN_S = 5.0  # beyond the longest a GET is held, for the bus and a busy worker


async def serve_forwarded(args: dict[str, Any]) -> list[Any]:
    """A GET or POST another worker forwarded for a session of this one."""
    transport = SESSIONS.get(args["sid"])
    if transport is None:
        reply = SESSION_ID_UNKNOWN
    elif args["method"] == "GET":
        reply = await transport.get()
    else:
        reply = await transport.post(args["body"])
    return [reply.status, reply.body, reply.content_type]


class EngineIOHttp(JsonHttpHandler):
    """GET and POST on /socket.io/ for long-polling; what else comes there is refused as
    engine.io refuses it (400 with its error codes)."""

    allowed_methods = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
    new_session: NewSession

    def __init__(
        self, scope: dict[str, Any], receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        super().__init__(scope, send)
        self.receive = receive

    @classmethod
    def serving(cls, new_session: NewSession) -> Any:
        """The ASGI app that opens `new_session`'s sessions."""

        async def app(scope: Any, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
            handler = cls(scope, receive, send)
            handler.new_session = new_session
            await handler.handle()

        return app

    async def get(self) -> None:
        query = parse_qs(self.scope.get("query_string", b"").decode("latin-1"))
        refusal = handshake.refusal(query)
        if refusal is None and query["transport"][0] != "polling":
            refusal = handshake.BAD_REQUEST  # transport=websocket without the Upgrade
        if refusal is not None:
            await self.answer(error(400, refusal.code, refusal.message))
            return
        origin = dict(self.scope.get("headers", ())).get(b"origin")
        if not origin_allowed(origin, self.request):  # as for a WebSocket handshake
            await self.answer(FORBIDDEN)
            return
        method, sid = self.scope["method"], query.get("sid", [""])[0]
        if not sid:
            if method != "GET":
                await self.answer(error(400, 2, "Bad handshake method"))
                return
            node = await self.node()
            new_sid = sids.new_sid(node.procid, sid_key(settings.SECRET_KEY))
            await self.answer(await self.new_session(self.scope, query, new_sid).start())
            return
        if method not in ("GET", "POST"):
            await self.answer(BAD_REQUEST)
            return
        body = ""
        if method == "POST":
            raw = await self.read_body(settings.SOCKETIO_MAX_PAYLOAD)
            if raw is None:
                await self.answer(CONTENT_TOO_LARGE)
                return
            try:
                body = raw.decode("utf-8")
            except UnicodeDecodeError:
                await self.answer(BAD_REQUEST)
                return
        await self.answer(await self.serve(sid, method, body))

    async def serve(self, sid: str, method: str, body: str) -> Reply:
        owner = sids.owner_of(sid, sid_key(settings.SECRET_KEY))
        if owner is None:
            return SESSION_ID_UNKNOWN
        node = await self.node()
        if owner == node.procid:
            POLLING_REQUESTS.labels("here").inc()
            transport = SESSIONS.get(sid)
            if transport is None:
                return SESSION_ID_UNKNOWN
            if method == "POST":
                return await transport.post(body)
            return await self.held_get(transport)
        POLLING_REQUESTS.labels("forwarded").inc()
        held = (settings.SOCKETIO_PING_INTERVAL_MS + settings.SOCKETIO_PING_TIMEOUT_MS) / 1000
        within = held + FORWARD_MARGIN_S  # PollingTransport.longest_hold, and a margin
        try:
            args = {"sid": sid, "method": method, "body": body}
            status, text, content_type = await node.ask_worker(owner, FORWARDED, args, within)
        except WorkerUnavailable as exc:
            logger.info("long-polling request for %s: %s", sid, exc)
            return SESSION_ID_UNKNOWN
        return Reply(status, text, content_type)

    async def held_get(self, transport: PollingTransport[Any]) -> Reply:
        """The session's GET, given up when the client goes away meanwhile (what it would
        have taken stays queued for the next GET)."""
        getting = asyncio.ensure_future(transport.get())
        leaving = asyncio.ensure_future(self.client_left())
        try:
            await asyncio.wait((getting, leaving), return_when=asyncio.FIRST_COMPLETED)
        finally:
            leaving.cancel()
        if not getting.done():
            getting.cancel()
            return BAD_REQUEST  # nobody reads it
        return getting.result()

    async def client_left(self) -> None:
        while (await self.receive())["type"] != "http.disconnect":
            pass

    async def read_body(self, limit: int) -> bytes | None:
        """The request body, or None once it passes `limit` bytes."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                return b""
            chunk: bytes = message.get("body", b"")  # type: ignore[assignment]
            size += len(chunk)
            if size > limit:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def answer(self, reply: Reply) -> None:
        content_type = (b"Content-Type", reply.content_type.encode())
        await self.respond_body(reply.status, reply.body.encode(), content_type)
