"""HTTP in, JSON out for the cluster endpoints.

These are plain ASGI handlers rather than Django views: the roster is the hot path and
Django's ASGI handler (threads, middleware) costs more than the Redis round trip itself
(bench/README.md). Nor are they Channels' AsyncHttpConsumer, which runs
every request through `await_many_dispatch` (a task per receive, asyncio.wait, a
cancelled task at the end) for a request these endpoints answer without reading its body
(bench/README.md). They have no channel-layer channel of their own.

Skipping Django's handler must not skip its protections, or a page on another site could
read these endpoints through DNS rebinding. Each request therefore goes through Django's
own code, as a Django view behind `MIDDLEWARE` would: `HttpRequest.get_host()` checks Host
against ALLOWED_HOSTS (DisallowedHost -> 400 JSON), and SecurityMiddleware's
`process_request` (SECURE_SSL_REDIRECT, SECURE_PROXY_SSL_HEADER, SECURE_REDIRECT_EXEMPT)
and `process_response` (HSTS, nosniff, Referrer-Policy, Cross-Origin-Opener-Policy) run on
the request and on a response object whose headers are then sent. Measured in-process (a
loop of a few thousand calls of the /socket.io/ refusal, which does nothing else, with a
fake send), this adds 8-12 us per request, most of it building the ASGIRequest and
get_host(); the middleware and the headers it adds are worked out once per setting.
"""

from __future__ import annotations

import base64
import functools
import hmac
import io
import logging
from importlib import import_module
from typing import Any
from urllib.parse import parse_qs, unquote_to_bytes

import orjson
from asgiref.typing import ASGIReceiveCallable, ASGISendCallable
from channels.db import database_sync_to_async
from django.conf import settings
from django.contrib import auth
from django.core.exceptions import DisallowedHost
from django.core.handlers.asgi import ASGIRequest
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse
from django.middleware.security import SecurityMiddleware

from rooms.bus.directory import ClusterUnavailable
from rooms.cluster.names import MAX_ROOM_LENGTH, InvalidRoom, validate_room
from rooms.cluster.node import Rooms, Roster, RosterJson, WorkerNode
from rooms.metrics.exposition import cluster_exposition
from users.models import PlaygroundUser
from users.services import user_names

logger = logging.getLogger(__name__)
# Django's own logger for a refused Host (django.core.handlers.exception logs it there)
disallowed_host_logger = logging.getLogger("django.security.DisallowedHost")

JSON = (b"Content-Type", b"application/json")


def _no_response(request: HttpRequest) -> HttpResponse:
    raise AssertionError("SecurityMiddleware is only asked for its hooks here")


@functools.cache
def security_middleware() -> SecurityMiddleware:
    """Django's SecurityMiddleware, built once (it reads its settings when built, as in
    Django's own handler) and again after a setting changes (tests)."""
    return SecurityMiddleware(_no_response)


_security_headers: dict[bool, list[tuple[bytes, bytes]]] = {}  # is_secure() -> headers


def security_headers(request: HttpRequest) -> list[tuple[bytes, bytes]]:
    """The headers SecurityMiddleware.process_response adds to a JSON response for this
    request. They depend on nothing but the settings and whether the request came over
    https, so Django's code works them out once for each and they are reused."""
    secure = request.is_secure()
    headers = _security_headers.get(secure)
    if headers is None:
        response = HttpResponse(content_type="application/json")
        response = security_middleware().process_response(request, response)
        headers = _security_headers[secure] = [
            (name.encode("latin-1"), value.encode("latin-1"))
            for name, value in response.headers.items()
            if name != "Content-Type"
        ]
    return headers


@receiver(setting_changed)
def _forget_security_settings(**kwargs: Any) -> None:
    security_middleware.cache_clear()
    _security_headers.clear()


class JsonHttpHandler:
    """One request, one JSON response; an instance per request, as Channels makes consumers."""

    allowed_methods: tuple[str, ...] = ("GET", "HEAD")

    def __init__(self, scope: dict[str, Any], send: ASGISendCallable) -> None:
        self.scope = scope
        self.send = send
        # What Django's views see; these handlers never read a body (rooms.server.limits
        # bounds what daphne reads of one).
        self.request = ASGIRequest(scope, io.BytesIO())

    @classmethod
    def as_asgi(cls) -> Any:
        async def app(scope: Any, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
            await cls(scope, send).handle()

        return app

    async def handle(self) -> None:
        try:
            self.request.get_host()
        except DisallowedHost as exc:
            disallowed_host_logger.error("%s", exc, extra={"status_code": 400})
            await self.respond(400, {"error": "Host not allowed (ALLOWED_HOSTS)"})
            return
        redirect = security_middleware().process_request(self.request)
        if redirect is not None:  # SECURE_SSL_REDIRECT: to https, as Django answers
            await self.respond_json(redirect.status_code, b"", {"Location": redirect["Location"]})
            return
        if self.scope["method"] not in self.allowed_methods:
            allow = {"Allow": ", ".join(self.allowed_methods)}
            await self.respond(405, {"error": "Method not allowed"}, allow)
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
        await self.respond_body(status, body, JSON, headers)

    async def respond_body(
        self,
        status: int,
        body: bytes,
        content_type: tuple[bytes, bytes],
        headers: dict[str, str] | None = None,
    ) -> None:
        extra = [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
        extra += security_headers(self.request)
        length = (b"Content-Length", b"%d" % len(body))  # else HTTP/1.1 answers go chunked
        await self.send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [content_type, length, *extra],
                "trailers": False,
            }
        )
        await self.send({"type": "http.response.body", "body": body, "more_body": False})

    def query_flag(self, name: str) -> bool:
        values = parse_qs(self.scope.get("query_string", b"").decode("latin-1")).get(name, [""])
        return values[0] in ("1", "true", "yes")


def workers_headers(roster: Roster | RosterJson | Rooms) -> dict[str, str]:
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


ROOMS_DEFAULT_LIMIT = 100
ROOMS_MAX_LIMIT = 1000


class RoomsView(JsonHttpHandler):
    """GET /rooms[?limit=N&prefix=P]: the rooms in use across the cluster, with how many
    sockets each holds on all workers, largest first (then by name): at most `limit`
    (100 by default, 1000 at most), only those whose name starts with `prefix`."""

    async def get(self) -> None:
        query = parse_qs(self.scope.get("query_string", b"").decode("utf-8", "replace"))
        prefix = query.get("prefix", [""])[0]
        raw_limit = query.get("limit", [str(ROOMS_DEFAULT_LIMIT)])[0]
        if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= ROOMS_MAX_LIMIT:
            await self.respond(400, {"error": f"limit must be 1 to {ROOMS_MAX_LIMIT}"})
            return
        if len(prefix) > MAX_ROOM_LENGTH:
            error = f"prefix longer than {MAX_ROOM_LENGTH} characters"
            await self.respond(400, {"error": error})
            return
        rooms = await (await self.node()).rooms(prefix, int(raw_limit))
        body = [{"room": room, "sockets": sockets} for room, sockets in rooms.sizes]
        await self.respond(200, body, workers_headers(rooms))


PUBLIC_WORKER_FIELDS = ("procid", "sockets", "rooms")


def is_staff_session(request: HttpRequest) -> bool:
    """Whether the request carries the Django session of an active staff user, read as
    SessionMiddleware and AuthenticationMiddleware would (the session hash included)."""
    session_key = request.COOKIES.get(settings.SESSION_COOKIE_NAME)
    if not session_key:
        return False
    request.session = import_module(settings.SESSION_ENGINE).SessionStore(session_key)
    user = auth.get_user(request)
    return bool(user.is_active and user.is_staff)


def holds_token(request: HttpRequest, token: str) -> bool:
    """Whether the request carries `token`: `Authorization: Bearer <token>` (RFC 6750
    section 2.1), or HTTP Basic with the token as the password and any user name (RFC
    7617) for tools that can put credentials only in a URL (http://ops:<token>@host).
    No token configured: nobody. Compared in constant time."""
    scheme, _, credentials = request.headers.get("Authorization", "").strip().partition(" ")
    credentials = credentials.strip()
    if not token or not credentials:
        return False
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(credentials, validate=True).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            return False
        credentials = decoded.partition(":")[2]
    elif scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(credentials.encode(), token.encode())


class WorkersView(JsonHttpHandler):
    """GET /workers: the live workers and what each holds.

    A worker's pid, host name, start time, memory and GC figures help an attacker more
    than a visitor: with DEBUG off only staff (a Django session, e.g. the admin's) and an
    operator's tool holding WORKERS_TOKEN see them; anyone else gets PUBLIC_WORKER_FIELDS.
    """

    async def get(self) -> None:
        workers, expected = await (await self.node()).workers()
        headers = {"X-Workers-Expected": str(expected), "X-Workers-Responded": str(len(workers))}
        if not (
            settings.DEBUG
            or holds_token(self.request, settings.WORKERS_TOKEN)
            or await database_sync_to_async(is_staff_session)(self.request)
        ):
            workers = [{k: w[k] for k in PUBLIC_WORKER_FIELDS if k in w} for w in workers]
        await self.respond(200, workers, headers)


class MetricsView(JsonHttpHandler):
    """GET /metrics: every live worker's Prometheus series in one scrape, each labelled
    with its procid (rooms.metrics.exposition). With DEBUG off only staff and a scraper
    holding METRICS_TOKEN (Bearer, as Prometheus' `authorization` sends it) read it: the
    figures tell an attacker how the cluster is doing under the attack."""

    async def get(self) -> None:
        if not (
            settings.DEBUG
            or holds_token(self.request, settings.METRICS_TOKEN)
            or await database_sync_to_async(is_staff_session)(self.request)
        ):
            challenge = {"WWW-Authenticate": 'Bearer realm="metrics"'}  # RFC 6750 section 3
            await self.respond(401, {"error": "a staff session or METRICS_TOKEN"}, challenge)
            return
        snapshots, expected = await (await self.node()).metrics()
        accept = self.request.headers.get("Accept", "")
        body, content_type = cluster_exposition(snapshots, expected, accept)
        headers = {
            "X-Workers-Expected": str(len(expected)),
            "X-Workers-Responded": str(len(snapshots)),
        }
        await self.respond_body(200, body, (b"Content-Type", content_type.encode()), headers)


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
