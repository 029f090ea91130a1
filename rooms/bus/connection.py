"""Opening a plain asyncio connection to one Redis server from its URL.

Shared by rooms.publisher and rooms.subscriber, whose connections each speak just the few
commands they need.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from typing import Any, TypeVar, cast
from urllib.parse import unquote, urlsplit


class CommandConnection(asyncio.Protocol):
    """A connection whose `command` sends one command and gives its reply as a future."""

    transport: asyncio.Transport | None = None

    def command(self, *parts: bytes) -> asyncio.Future[Any]:
        raise NotImplementedError

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # a stream transport, but not necessarily an asyncio.Transport instance (uvloop's)
        self.transport = cast(asyncio.Transport, transport)


ConnectionT = TypeVar("ConnectionT", bound=CommandConnection)


async def open_redis_connection(url: str, factory: Callable[[], ConnectionT]) -> ConnectionT:
    """Connect to a redis:// or rediss:// URL (TLS without certificate checks, as Heroku
    Redis's certificate is self-signed) and authenticate if it has a password."""
    parts = urlsplit(url)
    context: ssl.SSLContext | None = None
    if parts.scheme == "rediss":
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    loop = asyncio.get_running_loop()
    host = parts.hostname or "127.0.0.1"
    _, connection = await loop.create_connection(factory, host, parts.port or 6379, ssl=context)
    if parts.password is not None:
        credentials = [unquote(parts.password).encode()]
        if parts.username:
            credentials.insert(0, unquote(parts.username).encode())
        try:
            await connection.command(b"AUTH", *credentials)
        except BaseException:
            connection.close()
            raise
    return connection


def redis_py_options(url: str, timeout: float) -> dict[str, Any]:
    """Keyword arguments for a redis-py client of this URL, with the same TLS choice as
    `open_redis_connection`."""
    options: dict[str, Any] = {"socket_timeout": timeout, "socket_connect_timeout": timeout}
    if url.startswith("rediss://"):
        options["ssl_cert_reqs"] = None  # Heroku Redis: self-signed certificate
    return options
