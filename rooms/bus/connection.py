"""A plain asyncio connection to one Redis server, opened from its URL.

The bus speaks only a handful of commands (PUBLISH, SUBSCRIBE, UNSUBSCRIBE, PING, AUTH), so
its connections are bare asyncio protocols: commands are encoded and replies parsed by
hiredis, the C parser redis-py itself uses when installed (https://github.com/redis/hiredis-py),
and nothing else stands between a message and the event loop.

What such a connection guarantees, whatever uses it:
- Redis answers the commands of one connection in order (RESP,
  https://redis.io/docs/latest/develop/reference/protocol-spec/), so each reply that is not
  a pub/sub message completes the oldest command still waiting;
- what is queued for Redis is bounded: a Redis that stops reading (hung, SIGSTOPped, a
  network that drops without a reset) makes the next command fail at once with
  `RedisNotReading`, and the connection is aborted so its owner opens a fresh one;
- `rediss://` verifies the server's certificate unless `RedisTls(verify=False)` says not to
  (Heroku Redis's certificates are self-signed: https://devcenter.heroku.com/articles/securing-heroku-redis).
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar, cast
from urllib.parse import unquote, urlsplit

import hiredis

DEFAULT_MAX_OUTGOING = 16 * 1024 * 1024
"""Bytes a connection may have queued for Redis before it is dropped: room for bursts
(a thousand joins, a roster of ten thousand sockets) hundreds of times over, and half of
Redis's own default hard limit for a pub/sub client (32 MB)."""


class ReplyError(Exception):
    """Redis answered a command with an error (-ERR ..., -NOAUTH ..., -WRONGPASS ...)."""


class RedisNotReading(ConnectionError):
    """What is queued for a Redis server reached the cap: the server is not reading."""

    def __init__(self, url: str, queued: int, cap: int) -> None:
        super().__init__(
            f"Redis at {safe_url(url)} is not reading: {queued} bytes are queued for it "
            f"(cap {cap}, BUS_MAX_OUTGOING_BYTES); dropping the connection"
        )
        self.queued = queued


class CertificateRefused(ConnectionError):
    """A rediss:// server's certificate failed verification."""


@dataclass(frozen=True)
class RedisTls:
    """How `rediss://` URLs are trusted: verified against the system's CAs (or `ca_file`)
    by default; `verify=False` keeps the encryption but accepts any certificate."""

    verify: bool = True
    ca_file: str | None = None

    def context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self.ca_file)
        if not self.verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    def redis_py_options(self) -> dict[str, Any]:
        """The same choice for a redis-py client (ignored for redis:// URLs)."""
        if not self.verify:
            return {"ssl_cert_reqs": None, "ssl_check_hostname": False}
        options: dict[str, Any] = {"ssl_cert_reqs": "required", "ssl_check_hostname": True}
        if self.ca_file:
            options["ssl_ca_certs"] = self.ca_file
        return options


class CommandConnection(asyncio.Protocol):
    """A connection whose `command` sends one command and gives its reply as a future.

    Subclasses decide when queued bytes are written (`_queue`); every reply that is not
    taken by `_take` answers the oldest waiting command.
    """

    def __init__(self, *, url: str = "", max_outgoing: int = DEFAULT_MAX_OUTGOING) -> None:
        self.url = url
        self.max_outgoing = max_outgoing
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self._reader = hiredis.Reader(replyError=ReplyError)
        # one entry per reply expected, in order; None for a reply nobody waits for
        self._waiting: deque[asyncio.Future[Any] | None] = deque()

    def command(self, *parts: bytes, replies: int = 1) -> asyncio.Future[Any]:
        """Queue one command; the future gets its reply. Queued at once, not when awaited:
        a caller that stops waiting (a timeout cancels the future) does not take it back.

        A command Redis answers with several replies (UNSUBSCRIBE of n channels in
        subscribe mode: one confirmation per channel) says how many: the future gets the
        last, which comes once all the others have."""
        future = asyncio.get_running_loop().create_future()
        if self.closed or self.transport is None:
            future.set_exception(ConnectionError("connection to Redis lost"))
            return future
        queued = self.queued_bytes()
        if queued >= self.max_outgoing:  # so what is queued stays under cap + one command
            error = RedisNotReading(self.url, queued, self.max_outgoing)
            future.set_exception(error)
            self._fail(error)
            self.abort()
            return future
        # hiredis's stub types the argument as a 1-tuple; any number of parts is accepted
        self._queue(hiredis.pack_command(parts))  # type: ignore[arg-type]
        self._waiting.extend([None] * (replies - 1))
        self._waiting.append(future)
        return future

    def queued_bytes(self) -> int:
        """Bytes given to this connection that Redis has not read yet (as far as asyncio
        knows: the kernel's socket buffers come on top)."""
        return self.transport.get_write_buffer_size() if self.transport is not None else 0

    def _queue(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        """Drop the connection at once, with whatever is still unsent."""
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    # ---- asyncio.Protocol -----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # a stream transport, but not necessarily an asyncio.Transport instance (uvloop's)
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self._reader.feed(data)
        while True:
            try:
                reply = self._reader.gets()
            except hiredis.ProtocolError as exc:  # the stream cannot be trusted any more
                self._fail(ConnectionError(f"bad reply from Redis: {exc}"))
                self.abort()
                return
            if reply is False:
                return
            if not self._take(reply):
                self._answer(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(ConnectionError(f"connection to Redis lost: {exc or 'closed'}"))

    def _take(self, reply: Any) -> bool:
        """True when the reply is not an answer to a command (a pub/sub message)."""
        return False

    def _answer(self, reply: Any) -> None:
        if not self._waiting:
            return  # a confirmation nobody waits for any more
        future = self._waiting.popleft()
        if future is None or future.done():
            return
        if isinstance(reply, ReplyError):
            future.set_exception(reply)
        else:
            future.set_result(reply)

    def _fail(self, error: Exception) -> None:
        self.closed = True
        while self._waiting:
            future = self._waiting.popleft()
            if future is not None and not future.done():
                future.set_exception(error)


ConnectionT = TypeVar("ConnectionT", bound=CommandConnection)

VERIFIED = RedisTls()
"""The default: certificates of rediss:// servers are verified."""


async def open_redis_connection(
    url: str, factory: Callable[[], ConnectionT], tls: RedisTls = VERIFIED
) -> ConnectionT:
    """Connect to a redis:// or rediss:// URL and authenticate if it has a password."""
    parts = urlsplit(url)
    context = tls.context() if parts.scheme == "rediss" else None
    loop = asyncio.get_running_loop()
    host = parts.hostname or "127.0.0.1"
    try:
        _, connection = await loop.create_connection(factory, host, parts.port or 6379, ssl=context)
    except ssl.SSLCertVerificationError as exc:
        raise CertificateRefused(
            f"the certificate of {safe_url(url)} failed verification ({exc.verify_message}); "
            "a self-signed one (Heroku Redis) needs REDIS_TLS_VERIFY=off, or "
            "REDIS_TLS_CA_FILE naming its CA"
        ) from exc
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


def redis_py_options(url: str, timeout: float, tls: RedisTls = VERIFIED) -> dict[str, Any]:
    """Keyword arguments for a redis-py client of this URL, with the same TLS choice as
    `open_redis_connection`."""
    options: dict[str, Any] = {"socket_timeout": timeout, "socket_connect_timeout": timeout}
    if urlsplit(url).scheme == "rediss":
        options.update(tls.redis_py_options())
    return options


def safe_url(url: str) -> str:
    """A URL for a log line, without its password."""
    head, _, host = url.rpartition("@")
    return f"{head.split('://')[0]}://{host}" if head else url
