"""ASGI entry point: HTTP through rooms.http.routing (Django behind it, Socket.IO's
long-polling beside it), WebSockets to Socket.IO; every scope carries this process's
cluster node (rooms.runtime.ClusterScope).

Importing this module changes nothing in daphne, Twisted or autobahn: a cluster worker's
entry point (rooms.runner.worker_main) installs the server tuning itself.
"""

from __future__ import annotations

import logging
import os
from typing import Any
from urllib.parse import parse_qs

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "identity_playground.settings")
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402  (needs Django)
from django.urls import path, re_path  # noqa: E402

from rooms.http.polling import EngineIOHttp  # noqa: E402
from rooms.http.routing import HttpRouter  # noqa: E402
from rooms.runtime import ClusterScope  # noqa: E402
from rooms.socketio.consumer import SocketIOConsumer, SocketIOPolling  # noqa: E402
from rooms.socketio.origin import OriginValidator  # noqa: E402
from rooms.socketio.upgrade import UpgradeConsumer  # noqa: E402

logger = logging.getLogger(__name__)


async def refuse_websocket(scope: Any, receive: Any, send: Any) -> None:
    """A handshake on a path that serves no WebSocket: closing before accepting makes
    daphne answer 403 (the ASGI spec's websocket.close before websocket.accept). Channels'
    URLRouter would raise "No route found" instead: a 500 and a traceback per attempt."""
    await receive()  # websocket.connect
    await send({"type": "websocket.close", "code": 1008, "reason": None})
    logger.debug("WebSocket handshake on %r refused: only /socket.io/ serves one", scope["path"])


socketio_websocket = SocketIOConsumer.as_asgi()
upgrade_websocket = UpgradeConsumer.as_asgi()


async def engineio_websocket(scope: Any, receive: Any, send: Any) -> None:
    """A WebSocket naming a long-polling session's sid upgrades it; any other opens one."""
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    app = upgrade_websocket if query.get("sid") else socketio_websocket
    await app(scope, receive, send)


websocket_routes = URLRouter(
    [
        path("socket.io/", engineio_websocket),  # type: ignore[arg-type]  # an ASGI app
        re_path(r"", refuse_websocket),  # type: ignore[arg-type]  # an ASGI app, as Channels allows
    ]
)

application = ClusterScope(
    ProtocolTypeRouter(
        {
            "http": HttpRouter(django_asgi_app, EngineIOHttp.serving(SocketIOPolling)),
            "websocket": OriginValidator(websocket_routes),
        }
    )
)
