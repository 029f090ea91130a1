"""Channels consumers without a thread hop on every message."""

from __future__ import annotations

from typing import Any

from channels.consumer import get_handler_name


class DirectDispatch:
    """Dispatch like Channels' AsyncConsumer, minus `aclose_old_connections()`.

    Channels 4.3 runs that on asgiref's single thread before every message (each HTTP
    request, each WebSocket frame, pongs included): 50-70 us each, measured in bench/.
    These consumers reach the database only through `database_sync_to_async`, which
    closes stale connections itself.
    """

    async def dispatch(self, message: dict[str, Any]) -> None:
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)
