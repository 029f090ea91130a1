"""WebSocket Origin and Host checks against ALLOWED_HOSTS that let non-browser clients in.

A browser always sends Origin, so a page on another site cannot open a socket here as the
visitor (cross-site WebSocket hijacking). python-socketio, Node and mobile clients send no
Origin at all; Channels' stock validators refuse those, this one admits them.

Host is checked as Django checks it for every HTTP request (`HttpRequest.get_host()`, run
here on the handshake's scope): a name outside ALLOWED_HOSTS means the client reached this
server under someone else's name, as a page does through DNS rebinding, where Origin is
the attacker's own (allowed-looking) host. Every client sends Host (RFC 6455 section 4.1);
a scope without one (an in-process test client) is admitted like one without Origin.
"""

from __future__ import annotations

import io
from typing import Any
from urllib.parse import urlsplit

from asgiref.typing import ASGIReceiveCallable, ASGISendCallable, Scope
from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.core.handlers.asgi import ASGIRequest
from django.http.request import split_domain_port, validate_host


def origin_allowed(origin: bytes | None) -> bool:
    if origin is None:
        return True
    # ALLOWED_HOSTS names hosts without ports, as Django's own HttpRequest.get_host() checks
    domain, _port = split_domain_port(urlsplit(origin.decode("latin-1")).netloc)
    return bool(domain) and validate_host(domain, settings.ALLOWED_HOSTS)


def host_allowed(scope: Any) -> bool:
    """Whether the handshake's Host (or X-Forwarded-Host, with USE_X_FORWARDED_HOST) is
    one Django would serve; True when the scope has no Host header at all."""
    headers = dict(scope.get("headers", []))
    if b"host" not in headers and b"x-forwarded-host" not in headers:
        return True
    try:
        # ASGIRequest wants an HTTP method; the handshake is a GET (RFC 6455 section 4.1)
        ASGIRequest({**scope, "method": "GET"}, io.BytesIO()).get_host()
    except DisallowedHost:
        return False
    return True


class OriginValidator:
    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        if scope["type"] == "websocket":
            origin = dict(scope.get("headers", [])).get(b"origin")
            if not (origin_allowed(origin) and host_allowed(scope)):
                await receive()  # websocket.connect; closing now refuses the handshake (403)
                await send({"type": "websocket.close", "code": 1008, "reason": None})
                return
        await self.app(scope, receive, send)
