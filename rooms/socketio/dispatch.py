"""Channels consumers without a thread hop on every message, and without a channel."""

from __future__ import annotations

import contextlib
from typing import Any

from channels.consumer import get_handler_name
from channels.exceptions import StopConsumer
from channels.utils import await_many_dispatch


class DirectDispatch:
    """Dispatch like Channels' AsyncConsumer, minus `aclose_old_connections()`.

    Channels 4.3 runs that on asgiref's single thread before every message (each HTTP
    request, each WebSocket frame, pongs included): 50-70 us each, measured in bench/.
    These consumers reach the database only through `database_sync_to_async`, which
    closes stale connections itself.
    """

    scope: dict[str, Any]
    base_send: Any
    channel_layer: Any

    async def dispatch_from_client(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """AsyncConsumer.__call__ with no channel of the channel layer: these sockets are
        reached through their worker's node, which receives for all of them (one
        subscription per room, rooms.cluster.node), and a channel each would cost a
        layer channel and a receive per socket."""
        self.scope = scope
        self.channel_layer = None
        self.base_send = send
        with contextlib.suppress(StopConsumer):  # how a consumer ends itself
            await await_many_dispatch([receive], self.dispatch)

    async def dispatch(self, message: dict[str, Any]) -> None:
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)
