"""ASGI entry point: HTTP through rooms.routing (Django behind it), WebSockets to Socket.IO.

Under daphne the worker joins the cluster when the reactor starts (rooms.lifecycle).
"""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "identity_playground.settings")
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter  # noqa: E402  (needs Django set up)

from rooms.lifecycle import StartNodeOnFirstScope, install_daphne_hooks  # noqa: E402
from rooms.origin import OriginValidator  # noqa: E402
from rooms.routing import HttpRouter, websocket_routes  # noqa: E402

application = StartNodeOnFirstScope(
    ProtocolTypeRouter(
        {
            "http": HttpRouter(django_asgi_app),
            "websocket": OriginValidator(websocket_routes),
        }
    )
)
install_daphne_hooks()
