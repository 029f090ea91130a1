"""The Engine.IO layer alone at /engine.io/, echoing every message: what the protocol's
conformance suite expects of a server (socketio/engine.io-protocol, test-suite/). For
tests/integration/test_engineio_conformance.py; every other path is the project's.

Both transports and the upgrade are the product's own classes (rooms.socketio.websocket,
rooms.socketio.polling, rooms.socketio.upgrade, rooms.http.polling); only the layer above
them is this echo.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

from identity_playground.asgi import application as project
from rooms.engineio.payload import Item
from rooms.http.polling import EngineIOHttp
from rooms.runtime import ClusterScope
from rooms.socketio.polling import PollingTransport
from rooms.socketio.transport import Transport
from rooms.socketio.upgrade import UpgradeConsumer
from rooms.socketio.websocket import WebSocketTransport

PATH = "/engine.io/"


class Echo(Transport[Item]):
    def decode_message(self, text_data: str | None, bytes_data: bytes | None) -> Item:
        return text_data if text_data is not None else bytes_data or b""

    async def handle(self, message: Item) -> None:
        await self.send_frame(message if isinstance(message, str) else [message])


class EchoWebSocket(Echo, WebSocketTransport[Item]):
    pass


class EchoPolling(Echo, PollingTransport[Item]):
    pass


polling = EngineIOHttp.serving(EchoPolling)
websocket = EchoWebSocket.as_asgi()
upgrade = UpgradeConsumer.as_asgi()


async def route(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] not in ("http", "websocket") or scope["path"] != PATH:
        await project(scope, receive, send)
    elif scope["type"] == "http":
        await polling(scope, receive, send)
    else:
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        await (upgrade if query.get("sid") else websocket)(scope, receive, send)


application = ClusterScope(route)
