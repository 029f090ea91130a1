"""This worker's seat in the cluster: its sockets, its channel, and the messages it acts on.

Every worker process owns exactly one bus channel, read by one subscriber whose messages
are handled in arrival order by one long-lived loop; replies to this worker's own queries
skip that queue. Sockets have no channel of their own: the worker joins the group of a
room while it holds a socket in it and hands messages to its sockets from the registry.
So a roster query is one broadcast to the `cluster` group and one reply per worker
(rooms.cluster.gather), and an event for a room is one PUBLISH however many sockets listen
(rooms.cluster.fanout). Who is alive is rooms.cluster.membership's.

The node never encodes Socket.IO itself: the frames it sends of its own accord
(`identity-change`, `worker-down`, `socket-connected`) come from the `encode_event` it is
given, which is the codec's.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from rooms.bus.directory import WorkerInfo
from rooms.bus.publisher import Publisher
from rooms.bus.subscriber import Subscriber
from rooms.cluster import events
from rooms.cluster.departures import DEFAULT_MAX_QUEUED, Departures
from rooms.cluster.fanout import RoomFanout
from rooms.cluster.gather import Gatherer
from rooms.cluster.known_users import KNOWN_USERS
from rooms.cluster.membership import Directory, Janitor
from rooms.cluster.names import room_group
from rooms.cluster.registry import LocalSocket, Registry, make_procid
from rooms.cluster.requests import Requests, WorkerUnavailable
from rooms.metrics import series
from rooms.metrics.exposition import Snapshot, snapshot

logger = logging.getLogger(__name__)

EncodeEvent = Callable[..., events.Frame]
"""(event name, *args) -> the frame (or a binary event's frames) that emits it to a socket."""


RosterEntry = tuple[str, str, str]
"""(id_socket, id_user, procid): a plain tuple, as 1000 small objects cost more than the
JSON encoding of the whole roster."""


@dataclass(frozen=True)
class Roster:
    """A room's sockets across the cluster, grouped by worker, in no particular order
    (sorting 1000 entries cost about a tenth of the request)."""

    entries: list[RosterEntry]
    expected: int
    responded: int


@dataclass(frozen=True)
class Rooms:
    """The rooms in use across the cluster, [(room, sockets)], largest first."""

    sizes: list[tuple[str, int]]
    expected: int
    responded: int


ROOMS_PER_WORKER_REPLY = 10_000
"""The largest rooms each worker reports to GET /rooms: the sums are exact while no worker
holds more rooms than this under the prefix asked, and a reply stays a few hundred KB."""


@dataclass(frozen=True)
class RosterJson:
    """A room's sockets across the cluster as the JSON array GET /<room>/users returns,
    joined from each worker's encoded entries without decoding them."""

    json: bytes
    expected: int
    responded: int


def no_process_stats() -> dict[str, Any]:
    return {}


class WorkerNode:
    def __init__(
        self,
        *,
        publisher: Publisher,
        subscriber: Subscriber,
        directory: Directory,
        encode_event: EncodeEvent,
        registry: Registry | None = None,
        procid: str | None = None,
        gather_deadline: float = 1.0,
        gather_recheck: float = 0.1,
        janitor_interval: float = 1.0,
        send_timeout: float = 5.0,
        departures_max_queued: int = DEFAULT_MAX_QUEUED,
        process_stats: Callable[[], dict[str, Any]] = no_process_stats,
    ) -> None:
        self.publisher = publisher
        self.subscriber = subscriber
        self.directory = directory
        self.encode_event = encode_event
        self.registry = registry or Registry()
        self.procid = procid or make_procid()
        self.send_timeout = send_timeout
        self.process_stats = process_stats
        self.channel = ""
        self.started = time.time()
        self.gatherer = Gatherer(
            procid=self.procid,
            publisher=publisher,
            directory=directory,
            answer=self._answer,
            deadline=gather_deadline,
            recheck=gather_recheck,
        )
        self.fanout = RoomFanout(publisher, self.registry, self.bus_call)
        self.requests = Requests(procid=self.procid, publisher=publisher, bus_call=self.bus_call)
        self._channels: dict[str, str] = {}  # procid -> channel of the live workers last seen
        # told the procid of every worker announced down (what hangs on it is let go)
        self.worker_down_listeners: list[Callable[[str], None]] = []
        self.departures = Departures(
            registry=self.registry,
            publisher=publisher,
            subscriber=subscriber,
            send_timeout=send_timeout,
            max_queued=departures_max_queued,
        )
        self.janitor = Janitor(
            directory=directory,
            info=self._info,
            saw_alive=self._saw_alive,
            announce_down=self._publish_worker_down,
            on_return=self._announce_return,
            interval=janitor_interval,
        )
        self._inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._answering: set[asyncio.Task[None]] = set()
        self._declined_kinds: set[str] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._handlers: dict[str, Callable[[dict[str, Any]], Awaitable[None]]] = {
            events.ROOM_EMIT: self.fanout.deliver,
            events.USER_RENAMED: self._forward_rename,
            events.USER_DELETED: self._forget_user,
            events.WORKER_DOWN: self._announce_worker_down,
        }

    # ---- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        """Subscribe this worker's channel, join the cluster group, register, listen."""
        self.subscriber.listen(self._on_message)
        self.subscriber.listen_groups(self._on_group_message)
        try:
            self.channel = await self.subscriber.new_channel("worker.")
            self.gatherer.reply_to = self.requests.reply_to = self.channel
            await self.subscriber.group_add(events.CLUSTER_GROUP)
            await self.directory.register(self._info())
        except BaseException:
            await self.subscriber.close()  # no reconnecting for a node that never started
            raise
        self._tasks = [
            asyncio.create_task(self._listen(), name=f"{self.procid} listener"),
            asyncio.create_task(self.janitor.run(), name=f"{self.procid} janitor"),
            asyncio.create_task(self.departures.run(), name=f"{self.procid} departures"),
        ]
        logger.info("worker %s joined the cluster on %s", self.procid, self.channel)

    async def stop(self) -> None:
        """Leave at once so rosters stop expecting this worker (departures already queued
        get a second to go out first)."""
        if self._tasks:
            await self.departures.flush(within=1.0)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        await self.requests.close()
        try:
            await self.directory.unregister(self.procid)
        except Exception as exc:  # Redis away: the directory forgets us by NUMSUB anyway
            logger.warning("worker %s could not leave the cluster cleanly: %s", self.procid, exc)
        await self.subscriber.close()
        logger.info("worker %s left the cluster", self.procid)

    def _info(self) -> WorkerInfo:
        return WorkerInfo(
            procid=self.procid,
            channel=self.channel,
            pid=os.getpid(),
            host=socket.gethostname(),
            started=self.started,
        )

    def stats(self) -> dict[str, Any]:
        return {
            "procid": self.procid,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "sockets": len(self.registry),
            "rooms": self.registry.room_count,
            "started": self.started,
            **self.process_stats(),
        }

    # ---- this worker's sockets ----------------------------------------------------------

    def add(self, sock: LocalSocket) -> None:
        self.registry.add(sock)
        series.CONNECTS.inc()

    def remove(self, id_socket: str) -> list[str]:
        """Forget a socket at once; its rooms hear `socket-disconnected` and the rooms it
        was this worker's last socket in are unsubscribed soon after, by the departures
        task (rooms.cluster.departures): nothing here waits on Redis. Returns the rooms it
        was in."""
        sock = self.registry.remove(id_socket)
        if sock is None:
            return []
        series.DISCONNECTS.inc()
        rooms = sorted(sock.rooms)
        self.departures.rooms_emptied(r for r in rooms if not self.registry.has_room(r))
        self.departures.announce(rooms, self.encode_event("socket-disconnected", id_socket))
        return rooms

    async def join(self, id_socket: str, room: str) -> None:
        if self.registry.join(id_socket, room):
            await self.bus_call(self.subscriber.group_add, room_group(room))

    def leave(self, id_socket: str, room: str) -> None:
        """Take a socket out of a room at once; an emptied room is unsubscribed soon after."""
        if self.registry.leave(id_socket, room):
            self.departures.rooms_emptied([room])

    async def emit_to_rooms(
        self, rooms: list[str], frame: events.Frame, *, except_socket: str | None = None
    ) -> None:
        await self.fanout.emit(rooms, frame, except_socket=except_socket)

    async def bus_call(self, method: Callable[..., Awaitable[object]], *args: Any) -> None:
        """A bus write that never hangs or kills a consumer when Redis is away.

        The timeout is generous because publishes queue up on our connection under a burst
        of connects (a queued publish is still sent after its caller stopped waiting). A
        connection error is retried once: the first write after a Redis restart fails on the
        stale connection, and the retry gets a fresh one.
        """
        for attempt in (1, 2):
            try:
                async with asyncio.timeout(self.send_timeout):
                    await method(*args)
                return
            except TimeoutError:
                timeout = self.send_timeout
                logger.warning("bus write to %s timed out after %.1f s", args[0], timeout)
                return
            except Exception as exc:  # connection errors, OSErrors
                if attempt == 2:
                    logger.warning("bus write failed: %s: %s", type(exc).__name__, exc)

    def _saw_alive(self, alive: Sequence[WorkerInfo]) -> None:
        self.gatherer.remember_peers(alive)
        self._channels = {w.procid: w.channel for w in alive}
        self.departures.saw_alive({w.procid for w in alive})

    # ---- one worker's requests ----------------------------------------------------------

    def channel_of(self, procid: str) -> str | None:
        """The channel of the live worker `procid`, as the last directory scan saw it."""
        return self._channels.get(procid)

    async def ask_worker(self, procid: str, kind: str, args: dict[str, Any], within: float) -> Any:
        """The answer of the live worker `procid` (rooms.cluster.requests); WorkerUnavailable
        when it is not alive, or does not answer in time."""
        channel = self._channels.get(procid)
        if channel is None:  # started since the janitor's last scan, or gone
            self._saw_alive((await self.directory.scan())[0])
            channel = self._channels.get(procid)
        if channel is None:
            raise WorkerUnavailable(f"no live worker {procid}")
        asking = asyncio.ensure_future(self.requests.ask(channel, kind, args, within))
        try:
            # a worker found dead meanwhile (SIGKILL: Redis may have taken the request for
            # it) is not waited for until `within` runs out
            while not (await asyncio.wait({asking}, timeout=self.janitor.interval))[0]:
                if procid not in self._channels:
                    raise WorkerUnavailable(f"worker {procid} is gone")
            return asking.result()
        finally:
            asking.cancel()

    # ---- cluster queries ----------------------------------------------------------------

    async def gather(self, kind: str, **args: Any) -> tuple[dict[str, Any], int]:
        return await self.gatherer.gather(kind, **args)

    async def roster(self, room: str) -> Roster:
        replies, expected = await self.gather(events.ROSTER, room=room)
        entries = [(sid, uid, procid) for procid, pairs in replies.items() for sid, uid in pairs]
        return Roster(entries=entries, expected=expected, responded=len(replies))

    async def roster_json(self, room: str) -> RosterJson:
        replies, expected = await self.gather(events.ROSTER_JSON, room=room)
        body = b"[" + b",".join(part for part in replies.values() if part) + b"]"
        return RosterJson(json=body, expected=expected, responded=len(replies))

    async def rooms(self, prefix: str, limit: int) -> Rooms:
        """The `limit` largest rooms across the cluster whose name starts with `prefix`."""
        most = max(limit, ROOMS_PER_WORKER_REPLY)
        replies, expected = await self.gather(events.ROOMS, prefix=prefix, most=most)
        totals: dict[str, int] = {}
        for sizes in replies.values():
            for room, sockets in sizes:
                totals[room] = totals.get(room, 0) + sockets
        largest = heapq.nsmallest(limit, totals.items(), key=lambda size: (-size[1], size[0]))
        return Rooms(sizes=largest, expected=expected, responded=len(replies))

    async def metrics(self) -> tuple[dict[str, Snapshot], set[str]]:
        """Every live worker's Prometheus series (by procid), and the procids expected."""
        return await self.gatherer.gather_from(events.METRICS)

    async def workers(self) -> tuple[list[dict[str, Any]], int]:
        replies, expected = await self.gather(events.STATS)
        return sorted(replies.values(), key=lambda w: (w["host"], w["procid"])), expected

    def _answer(self, kind: str, args: dict[str, Any]) -> Any:
        if kind == events.ROSTER:
            return self.registry.roster(args["room"])
        if kind == events.ROSTER_JSON:
            return self.registry.roster_json(args["room"], self.procid)
        if kind == events.STATS:
            return self.stats()
        if kind == events.SOCKETS_PER_USER:  # the admin's "online now" (rooms.runtime)
            return self.registry.sockets_per_user()
        if kind == events.ROOMS:
            return self.registry.room_sizes(args["prefix"], args["most"])
        if kind == events.METRICS:
            series.SOCKETS.set(len(self.registry))
            series.ROOMS.set(self.registry.room_count)
            return snapshot()
        if kind == events.RENAME_REACH:  # the room events _forward_rename would publish here
            return len(self.registry.rooms_of_user(args["id_user"]))
        raise ValueError(f"unknown query kind {kind!r}")

    # ---- the receive loop ---------------------------------------------------------------

    def _on_message(self, message: dict[str, Any]) -> None:
        """A reply to a query of this worker completes it at once, and a query is answered
        at once from the registry: neither waits behind room events being delivered.
        Everything else takes its turn in the inbox, in arrival order."""
        kind = message.get("type")
        if kind == events.REPLY:
            if not self.requests.take_reply(message):
                self.gatherer.take_reply(message)
        elif kind == events.REQUEST:
            self.requests.take_request(message)
        elif kind == events.QUERY:
            if message["origin"] == self.procid:
                return  # the asker answers itself without a round trip
            reply = self._reply_to(message)
            if self.publisher.send_soon(message["reply_to"], reply):
                return
            answering = asyncio.ensure_future(
                self.bus_call(self.publisher.send, message["reply_to"], reply)
            )
            self._answering.add(answering)  # held until done: the loop keeps weak references
            answering.add_done_callback(self._answering.discard)
        else:
            self._inbox.put_nowait(message)

    def _on_group_message(self, group: str, message: dict[str, Any]) -> None:
        """A `socketio.emit` sent to a room's group from Django code (`group_send`, the
        Channels way: rooms.room_group) becomes that room's event; everything else sent
        to a group is a message of the cluster's."""
        if message.get("type") != events.SOCKETIO_EMIT:
            self._on_message(message)
            return
        room = self.registry.room_of_group(group)
        if room is None:
            return  # the room's last socket here left meanwhile
        event, args = message.get("event"), message.get("args", [])
        try:
            if not isinstance(event, str) or not isinstance(args, list | tuple):
                raise ValueError('needs "event" (a string) and "args" (a list)')
            frame = self.encode_event(event, *args)
        except (TypeError, ValueError) as exc:
            logger.warning("ignoring a socketio.emit to %s: %s", group, exc)
            return
        self._inbox.put_nowait(events.room_emit(room, frame))

    async def _listen(self) -> None:
        while True:
            message = await self._inbox.get()
            handler = self._handlers.get(message.get("type", ""))
            if handler is None:
                logger.warning("ignoring message of unknown type %r", message.get("type"))
                continue
            try:
                await handler(message)
            except Exception:
                logger.exception("handling %s failed", message.get("type"))

    def _reply_to(self, query: dict[str, Any]) -> dict[str, Any]:
        """The answer, or a refusal that spares the asker its deadline (a kind only a newer
        worker knows, in a rolling deploy). A refusal has no "payload": askers of earlier
        versions cannot mistake it for an empty answer."""
        reply = events.reply(query, self.procid)
        try:
            reply["payload"] = self._answer(query["kind"], query["args"])
        except Exception as exc:
            kind = str(query.get("kind"))
            if kind not in self._declined_kinds:  # once per kind: a deploy asks it often
                self._declined_kinds.add(kind)
                logger.warning("declining %r queries: %r", kind, exc)
            reply["declined"] = repr(exc)
        return reply

    async def _forward_rename(self, message: dict[str, Any]) -> None:
        """identity-change to the rooms of the renamed user's sockets on this worker. Every
        worker holding some of them does so, with the broadcast's event id: a socket in the
        rooms gets one identity-change, however many workers hold that user's sockets."""
        KNOWN_USERS.forget(message["id_user"])  # a new user must be admitted at once
        rooms = self.registry.rooms_of_user(message["id_user"])
        if rooms:
            frame = self.encode_event("identity-change", {"id_user": message["id_user"]})
            await self.fanout.emit(rooms, frame, event=message.get("event"))

    async def _forget_user(self, message: dict[str, Any]) -> None:
        KNOWN_USERS.forget(message["id_user"])

    async def _announce_worker_down(self, message: dict[str, Any]) -> None:
        for listener in self.worker_down_listeners:
            listener(message["procid"])
        await self.fanout.to_all(self.encode_event("worker-down", {"procid": message["procid"]}))

    async def _publish_worker_down(self, procid: str) -> None:
        await self.bus_call(
            self.publisher.group_send, events.CLUSTER_GROUP, events.worker_down(procid)
        )

    async def _announce_return(self) -> None:
        """Back in the directory after others removed it (a partition or a Redis restart):
        peers were told `worker-down` and dropped this worker's sockets, so each socket is
        announced to its rooms again, as on a connect."""
        for sock in self.registry.all():
            if sock.rooms:
                frame = self.encode_event("socket-connected", sock.id_socket)
                await self.fanout.emit(sorted(sock.rooms), frame, except_socket=sock.id_socket)
        logger.info("worker %s rejoined the cluster", self.procid)
