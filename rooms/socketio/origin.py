"""WebSocket Origin and Host checks that let non-browser clients in.

A browser always sends Origin, so a page on another site cannot open a socket here as the
visitor (cross-site WebSocket hijacking). python-socketio, Node and mobile clients send no
Origin at all; Channels' stock validators refuse those, this one admits them.

An Origin is admitted when it is this server's own origin as the browser reached it, or one
of CSRF_TRUSTED_ORIGINS: the same rule as Django's CSRF check of a write
(CsrfViewMiddleware._origin_verified, django/middleware/csrf.py). An origin is a scheme, a
host and a port (RFC 6454 section 4), so `http://localhost:9999` is another site than
`http://localhost:8000`. The handshake's own origin is the Host header (or X-Forwarded-Host,
with USE_X_FORWARDED_HOST) and the scheme the request arrived with: `https` when
SECURE_PROXY_SSL_HEADER names a proxy that says so (Heroku's router terminates TLS and sends
X-Forwarded-Proto), as Django's `HttpRequest.scheme` decides it for every HTTP request.

Host is checked as Django checks it for every HTTP request (`HttpRequest.get_host()`, run
here on the handshake's scope): a name outside ALLOWED_HOSTS means the client reached this
server under someone else's name, as a page does through DNS rebinding, where Origin is
the attacker's own (allowed-looking) host. Every client sends Host (RFC 6455 section 4.1);
a scope without one (an in-process test client) is admitted like one without Origin, but
then no Origin is its own.
"""

from __future__ import annotations

import io
from typing import Any
from urllib.parse import urlsplit

from asgiref.typing import ASGIReceiveCallable, ASGISendCallable, Scope
from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.core.handlers.asgi import ASGIRequest
from django.utils.http import is_same_domain

DEFAULT_PORTS = {"http": 80, "https": 443}
# daphne's WebSocket scope carries no scheme; the ASGI spec's "ws"/"wss" name the same
# origins as http/https (RFC 6455 section 4.1: the Origin a browser sends is the page's)
HTTP_SCHEME_OF = {"ws": "http", "wss": "https", "http": "http", "https": "https"}

Origin = tuple[str, str, int]  # scheme, host (lower case), port


def parse_origin(value: str) -> Origin | None:
    """(scheme, host, port) of a serialized origin, the default port filled in; None for
    "null" (an opaque origin: a sandboxed frame, a file) and anything unparsable."""
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname:
        return None
    return scheme, parts.hostname.lower(), port if port is not None else DEFAULT_PORTS[scheme]


def handshake_request(scope: Any) -> ASGIRequest:
    """The handshake as Django sees an HTTP request: a GET (RFC 6455 section 4.1), its
    scheme the http(s) one of the WebSocket's."""
    scheme = HTTP_SCHEME_OF.get(scope.get("scheme") or "ws", "http")
    return ASGIRequest({**scope, "method": "GET", "scheme": scheme}, io.BytesIO())


def own_origin(request: ASGIRequest) -> Origin | None:
    """The origin a browser reached this server at, or None without a Host to tell it."""
    if "HTTP_HOST" not in request.META and "HTTP_X_FORWARDED_HOST" not in request.META:
        return None
    return parse_origin(f"{request.scheme}://{request.get_host()}")


def trusted_origin(origin: str, parsed: Origin) -> bool:
    """Whether CSRF_TRUSTED_ORIGINS names `origin`, exactly or as `scheme://*.domain`."""
    for trusted in settings.CSRF_TRUSTED_ORIGINS:
        if "*" in trusted:
            parts = urlsplit(trusted)
            if parts.scheme == parsed[0] and is_same_domain(
                urlsplit(origin).netloc.lower(), parts.netloc.lstrip("*").lower()
            ):
                return True
        elif parse_origin(trusted) == parsed:
            return True
    return False


def origin_allowed(origin: bytes | None, request: ASGIRequest) -> bool:
    """No Origin (not a browser), this server's own origin, or a trusted one."""
    if origin is None:
        return True
    text = origin.decode("latin-1")
    parsed = parse_origin(text)
    if parsed is None:
        return False
    return parsed == own_origin(request) or trusted_origin(text, parsed)


def host_allowed(request: ASGIRequest) -> bool:
    """Whether the handshake's Host (or X-Forwarded-Host, with USE_X_FORWARDED_HOST) is
    one Django would serve; True when the scope has no Host header at all."""
    if "HTTP_HOST" not in request.META and "HTTP_X_FORWARDED_HOST" not in request.META:
        return True
    try:
        request.get_host()
    except DisallowedHost:
        return False
    return True


def handshake_allowed(scope: Any) -> bool:
    request = handshake_request(scope)
    if not host_allowed(request):
        return False
    return origin_allowed(dict(scope.get("headers", [])).get(b"origin"), request)


class OriginValidator:
    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        if scope["type"] == "websocket" and not handshake_allowed(scope):
            await receive()  # websocket.connect; closing now refuses the handshake (403)
            await send({"type": "websocket.close", "code": 1008, "reason": None})
            return
        await self.app(scope, receive, send)
