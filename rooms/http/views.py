"""HTTP in, JSON out for the cluster endpoints.

These are plain ASGI handlers rather than Django views: the roster is the hot path and
Django's ASGI handler (threads, middleware) costs more than the Redis round trip itself
(bench/README.md). Nor are they Channels' AsyncHttpConsumer, which runs
every request through `await_many_dispatch` (a task per receive, asyncio.wait, a
cancelled task at the end) for a request these endpoints answer without reading its body
(bench/README.md). They have no channel-layer channel of their own.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import parse_qs, unquote_to_bytes

import orjson
from asgiref.typing import ASGIReceiveCallable, ASGISendCallable
from channels.db import database_sync_to_async

from rooms.cluster.membership import ClusterUnavailable
from rooms.cluster.names import InvalidRoom, validate_room
from rooms.cluster.node import Roster, RosterJson, WorkerNode
from users.models import PlaygroundUser
from users.services import user_names

logger = logging.getLogger(__name__)

JSON = (b"Content-Type", b"application/json")


class JsonHttpHandler:
    """One request, one JSON response; an instance per request, as Channels makes consumers."""

    allowed_methods: tuple[str, ...] = ("GET", "HEAD")

    def __init__(self, scope: dict[str, Any], send: ASGISendCallable) -> None:
        self.scope = scope
        self.send = send

    @classmethod
    def as_asgi(cls) -> Any:
        async def app(scope: Any, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
            await cls(scope, send).handle()

        return app

    async def handle(self) -> None:
        if self.scope["method"] not in self.allowed_methods:
            await self.respond(405, {"error": "Method not allowed"})
            return
        try:
            await self.get()
        except ClusterUnavailable as exc:
            logger.warning("%s: %s", self.scope["path"], exc)
            await self.respond(503, {"error": "Channel layer (Redis) unavailable"})

    async def get(self) -> None:
        raise NotImplementedError

    async def node(self) -> WorkerNode:
        """This process's cluster node, from the scope (rooms.runtime.ClusterScope)."""
        node: WorkerNode = await self.scope["cluster"].node()
        return node

    async def respond(self, status: int, data: Any, headers: dict[str, str] | None = None) -> None:
        await self.respond_json(status, orjson.dumps(data), headers)

    async def respond_json(
        self, status: int, body: bytes, headers: dict[str, str] | None = None
    ) -> None:
        extra = [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
        length = (b"Content-Length", b"%d" % len(body))  # else HTTP/1.1 answers go chunked
        await self.send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [JSON, length, *extra],
                "trailers": False,
            }
        )
        await self.send({"type": "http.response.body", "body": body, "more_body": False})

    def query_flag(self, name: str) -> bool:
        values = parse_qs(self.scope.get("query_string", b"").decode("latin-1")).get(name, [""])
        return values[0] in ("1", "true", "yes")


def workers_headers(roster: Roster | RosterJson) -> dict[str, str]:
    """How many workers were asked and how many answered: fewer answers = a partial roster."""
    return {
        "X-Workers-Expected": str(roster.expected),
        "X-Workers-Responded": str(roster.responded),
    }


class RoomUsersView(JsonHttpHandler):
    """GET /<room>/users: every socket in the room across all live workers."""

    async def get(self) -> None:
        try:
            raw: bytes = self.scope["url_route"]["kwargs"]["raw_room"]
            room = validate_room(unquote_to_bytes(raw).decode("utf-8"))
        except UnicodeDecodeError:
            await self.respond(400, {"error": "room must be UTF-8"})
            return
        except InvalidRoom as exc:
            await self.respond(400, {"error": str(exc)})
            return
        node = await self.node()
        if not self.query_flag("hydrate"):
            joined = await node.roster_json(room)
            await self.respond_json(200, joined.json, workers_headers(joined))
            return
        roster = await node.roster(room)
        ids = {id_user for _, id_user, _ in roster.entries}
        names = await database_sync_to_async(user_names)(ids) if ids else {}
        entries = [
            {"id_socket": sid, "id_user": uid, "procid": procid, "data": {"name": names.get(uid)}}
            for sid, uid, procid in roster.entries
        ]
        await self.respond(200, entries, workers_headers(roster))


class WorkersView(JsonHttpHandler):
    """GET /workers: the live workers and what each holds."""

    async def get(self) -> None:
        workers, expected = await (await self.node()).workers()
        headers = {"X-Workers-Expected": str(expected), "X-Workers-Responded": str(len(workers))}
        await self.respond(200, workers, headers)


@database_sync_to_async
def database_answers() -> bool:
    try:
        PlaygroundUser.objects.exists()
    except Exception as exc:
        logger.warning("healthz: database: %s", exc)
        return False
    return True


class HealthView(JsonHttpHandler):
    """GET /healthz: 200 when the database and the channel layer answer, else 503."""

    async def get(self) -> None:
        checks = {"database": await database_answers(), "channel_layer": True}
        try:
            await (await self.node()).directory.ping()
        except ClusterUnavailable:
            checks["channel_layer"] = False
        healthy = all(checks.values())
        await self.respond(200 if healthy else 503, {"ok": healthy, **checks})


class EngineIOHttpRefusal(JsonHttpHandler):
    """Plain HTTP on /socket.io/ (long-polling): refused as the reference server does."""

    allowed_methods = ("GET", "HEAD", "POST", "OPTIONS")

    async def get(self) -> None:
        query = parse_qs(self.scope.get("query_string", b"").decode("latin-1"))
        if query.get("transport", [""])[0] != "websocket":
            await self.respond(400, {"code": 0, "message": "Transport unknown"})
        elif query.get("EIO", [""])[0] != "4":
            await self.respond(400, {"code": 5, "message": "Unsupported protocol version"})
        else:  # transport=websocket without the Upgrade
            await self.respond(400, {"code": 3, "message": "Bad request"})
