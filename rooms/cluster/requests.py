"""One worker asking another: a request to that worker's channel, one reply back.

What the roster is to every worker (rooms.cluster.gather), this is to one: an Engine.IO
session lives on the worker that opened it, and a long-polling request that lands on any
other worker is served by asking that one (as Phoenix's long-poll transport forwards to the
node that owns the session over its PubSub: lib/phoenix/transports/long_poll.ex). A request
to a worker that is gone fails at once when the bus can tell (PUBLISH reached nobody), else
when its timeout passes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from rooms.bus.publisher import Publisher
from rooms.cluster import events

logger = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any]], Awaitable[Any]]
"""(args) -> the reply's payload; what it raises becomes a refusal the asker sees."""
Listener = Callable[[dict[str, Any]], None]
"""(args) -> None: a one-way message, taken in arrival order as it comes off the bus."""
BusCall = Callable[..., Awaitable[None]]


class WorkerUnavailable(Exception):
    """The worker asked is gone, did not answer in time, or refused the request."""


class Requests:
    """This worker's side of one-to-one requests: asking, and answering what it serves."""

    def __init__(self, *, procid: str, publisher: Publisher, bus_call: BusCall) -> None:
        self.procid = procid
        self.publisher = publisher
        self.bus_call = bus_call
        self.reply_to = ""  # this worker's channel, set once subscribed
        self._pending: dict[str, asyncio.Future[Any]] = {}
        self._handlers: dict[str, Handler] = {}
        self._listeners: dict[str, Listener] = {}
        self._answering: set[asyncio.Task[None]] = set()

    def serve(self, kind: str, handler: Handler) -> None:
        self._handlers[kind] = handler

    def listen(self, kind: str, listener: Listener) -> None:
        self._listeners[kind] = listener

    async def tell(self, channel: str, kind: str, args: dict[str, Any]) -> bool:
        """A one-way message to the worker on `channel`, for its listener of `kind`; False
        when nobody listens there (or the bus is away). Messages from one worker to
        another arrive in the order they were told."""
        message = events.request(kind, args, reply_to="", origin=self.procid)
        if self.publisher.send_soon(channel, message):
            return True  # written in the order told, without waiting for Redis' answer
        try:
            return await self.publisher.send(channel, message) != 0
        except Exception as exc:
            logger.warning("telling %s: %r", channel, exc)
            return False

    async def ask(self, channel: str, kind: str, args: dict[str, Any], within: float) -> Any:
        """The payload the worker on `channel` answers; WorkerUnavailable otherwise."""
        message = events.request(kind, args, reply_to=self.reply_to, origin=self.procid)
        answer: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[message["request"]] = answer
        try:
            async with asyncio.timeout(within):
                reached = await self.publisher.send(channel, message)
                if reached == 0:
                    raise WorkerUnavailable(f"nobody listens on {channel}")
                return await answer
        except TimeoutError:
            raise WorkerUnavailable(f"no answer on {channel} within {within} s") from None
        except WorkerUnavailable:
            raise
        except Exception as exc:  # the bus is away
            raise WorkerUnavailable(f"bus unreachable: {exc!r}") from exc
        finally:
            del self._pending[message["request"]]

    def take_reply(self, message: dict[str, Any]) -> bool:
        """Whether the reply was to one of this worker's requests (and it is now answered)."""
        answer = self._pending.get(message["request"])
        if answer is None:
            return False
        if not answer.done():
            if "declined" in message:
                answer.set_exception(WorkerUnavailable(message["declined"]))
            else:
                answer.set_result(message.get("payload"))
        return True

    def take_request(self, message: dict[str, Any]) -> None:
        if not message["reply_to"]:  # one-way: handled here and now, in arrival order
            listener = self._listeners.get(message.get("kind", ""))
            if listener is not None:
                listener(message["args"])
            return
        answering = asyncio.ensure_future(self._answer(message))
        self._answering.add(answering)  # held until done: the loop keeps weak references
        answering.add_done_callback(self._answering.discard)

    async def _answer(self, message: dict[str, Any]) -> None:
        reply = events.reply(message, self.procid)
        handler = self._handlers.get(message.get("kind", ""))
        try:
            if handler is None:
                raise ValueError(f"no handler for {message.get('kind')!r} requests")
            reply["payload"] = await handler(message["args"])
        except Exception as exc:
            reply["declined"] = str(exc) or type(exc).__name__
        await self.bus_call(self.publisher.send, message["reply_to"], reply)

    async def close(self) -> None:
        for task in list(self._answering):
            task.cancel()
        await asyncio.gather(*self._answering, return_exceptions=True)
