"""Which ASGI app serves which HTTP path: the cluster endpoints, long-polling, or Django."""

from __future__ import annotations

import re
from typing import Any

from rooms.http.views import (
    HealthView,
    MetricsView,
    RoomsView,
    RoomUsersView,
    WorkersView,
)

# /<room>/users on the raw, still percent-encoded path, so that a room name holding "/"
# (sent as %2F) stays one segment. /ui/users is the page of room "users", not a roster.
_ROSTER_PATH = re.compile(rb"/(?!ui/users$)([^/]++)/users")
_FIXED_VIEWS = {
    "/workers": WorkersView,
    "/rooms": RoomsView,
    "/healthz": HealthView,
    "/metrics": MetricsView,
}
_FIXED_RAW_PATHS = frozenset(path.encode() for path in _FIXED_VIEWS)


def served_without_django(raw_path: bytes) -> bool:
    """Whether HttpRouter answers this (still percent-encoded) path itself."""
    return raw_path in _FIXED_RAW_PATHS or _ROSTER_PATH.fullmatch(raw_path) is not None


ENGINEIO_PATH = "/socket.io/"


class HttpRouter:
    """`engineio` serves long-polling on ENGINEIO_PATH (rooms.http.polling, handed the
    Socket.IO layer's session class by the ASGI application), through daphne's own HTTP
    channel: a GET may be held for a ping interval."""

    def __init__(self, django_app: Any, engineio: Any) -> None:
        self.roster = RoomUsersView.as_asgi()
        self.fixed = {path: view.as_asgi() for path, view in _FIXED_VIEWS.items()}
        self.fixed[ENGINEIO_PATH] = engineio
        self.django_app = django_app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        raw_path = scope.get("raw_path") or scope["path"].encode("utf-8")
        match = _ROSTER_PATH.fullmatch(raw_path)
        if match:
            route = {"args": (), "kwargs": {"raw_room": match.group(1)}}
            await self.roster({**scope, "url_route": route}, receive, send)
        else:
            app = self.fixed.get(scope["path"], self.django_app)
            await app(scope, receive, send)
