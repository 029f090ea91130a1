"""WebSocket Origin check against ALLOWED_HOSTS that lets non-browser clients in.

A browser always sends Origin, so a page on another site cannot open a socket here as the
visitor (cross-site WebSocket hijacking). python-socketio, Node and mobile clients send no
Origin at all; Channels' stock validators refuse those, this one admits them.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from asgiref.typing import ASGIReceiveCallable, ASGISendCallable, Scope
from django.conf import settings
from django.http.request import split_domain_port, validate_host


def origin_allowed(origin: bytes | None) -> bool:
    if origin is None:
        return True
    # ALLOWED_HOSTS names hosts without ports, as Django's own HttpRequest.get_host() checks
    domain, _port = split_domain_port(urlsplit(origin.decode("latin-1")).netloc)
    return bool(domain) and validate_host(domain, settings.ALLOWED_HOSTS)


class OriginValidator:
    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        if scope["type"] == "websocket":
            origin = dict(scope.get("headers", [])).get(b"origin")
            if not origin_allowed(origin):
                await receive()  # websocket.connect; closing now refuses the handshake (403)
                await send({"type": "websocket.close", "code": 1008, "reason": None})
                return
        await self.app(scope, receive, send)
