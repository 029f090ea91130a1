"""ASGI entry point: HTTP through rooms.http.routing (Django behind it), WebSockets to
Socket.IO; every scope carries this process's cluster node (rooms.runtime.ClusterScope).

Importing this module changes nothing in daphne, Twisted or autobahn: a cluster worker's
entry point (rooms.runner.worker_main) installs the server tuning itself.
"""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "identity_playground.settings")
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402  (needs Django)
from django.urls import path  # noqa: E402

from rooms.http.routing import HttpRouter  # noqa: E402
from rooms.runtime import ClusterScope  # noqa: E402
from rooms.socketio.consumer import SocketIOConsumer  # noqa: E402
from rooms.socketio.origin import OriginValidator  # noqa: E402

websocket_routes = URLRouter([path("socket.io/", SocketIOConsumer.as_asgi())])

application = ClusterScope(
    ProtocolTypeRouter(
        {
            "http": HttpRouter(django_asgi_app),
            "websocket": OriginValidator(websocket_routes),
        }
    )
)
