"""This worker's seat in the cluster: one channel, one receive loop, scatter-gather.

Every worker process owns exactly one channel-layer channel, read by one subscriber
(rooms/subscriber.py) whose messages are handled in arrival order by one long-lived loop;
replies to this worker's own queries skip that queue. Sockets have no channel of their own:
the worker joins the group of a room while it holds a socket in it and hands messages to
its sockets from the registry. So a roster query is one broadcast to the `cluster` group and
one reply per worker, and an event for a room is one PUBLISH however many sockets listen.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from rooms import memory, protocol
from rooms.directory import ClusterUnavailable, Directory, WorkerInfo
from rooms.known_users import KNOWN_USERS
from rooms.names import group_for_room
from rooms.publisher import LayerPublisher, Publisher
from rooms.registry import LocalSocket, Registry, make_procid
from rooms.subscriber import LayerSubscriber, Subscriber

logger = logging.getLogger(__name__)

CLUSTER_GROUP = "cluster"


@dataclass
class Gathered:
    """Replies to one cluster query, keyed by the procid that sent each.

    Replies may arrive before the asker knows whom to expect (the query is published while
    the directory is read): they are kept, and only the expected ones are the answer.
    A worker that cannot answer (a kind it does not know, in a rolling deploy) declines:
    it is waited for no longer, and its part is missing from the answer. When whom to
    expect was guessed from a count rather than read from the directory, a reply from a
    worker outside the guess proves it wrong (a dead worker replaced by a new one keeps the
    count): the query then completes at once as `stale`, for the asker to read the
    directory.
    """

    expected: set[str] | None = None
    guessed: bool = False
    replies: dict[str, Any] = field(default_factory=dict)
    declined: set[str] = field(default_factory=set)
    complete: asyncio.Event = field(default_factory=asyncio.Event)

    def add(self, procid: str, payload: Any) -> None:
        self.replies.setdefault(procid, payload)  # duplicates keep the first reply
        self._check()

    def decline(self, procid: str) -> None:
        self.declined.add(procid)
        self._check()

    def expect(self, procids: set[str], *, guessed: bool = False) -> None:
        self.expected, self.guessed = procids, guessed
        self.complete.clear()
        self._check()

    @property
    def stale(self) -> bool:
        return self.guessed and not self.replies.keys() <= (self.expected or set())

    def answers(self) -> dict[str, Any]:
        """The replies of expected workers (a stranger was not alive when the directory was
        read)."""
        expected = self.expected or set()
        return {procid: reply for procid, reply in self.replies.items() if procid in expected}

    def _check(self) -> None:
        if self.expected is None:
            return
        answered = self.replies.keys() & self.expected
        declined = self.declined & self.expected - answered
        if len(answered) + len(declined) == len(self.expected) or self.stale:
            self.complete.set()


async def _set_within(event: asyncio.Event, seconds: float) -> bool:
    """Whether the event is set now or within `seconds`."""
    if event.is_set():
        return True
    try:
        async with asyncio.timeout(seconds):
            await event.wait()
    except TimeoutError:
        return False
    return True


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
class RosterJson:
    """A room's sockets across the cluster as the JSON array GET /<room>/users returns,
    joined from each worker's encoded entries without decoding them."""

    json: bytes
    expected: int
    responded: int


class WorkerNode:
    def __init__(
        self,
        *,
        layer: Any,
        directory: Directory,
        publisher: Publisher | None = None,
        subscriber: Subscriber | None = None,
        registry: Registry | None = None,
        procid: str | None = None,
        gather_deadline: float = 1.0,
        gather_recheck: float = 0.1,
        janitor_interval: float = 1.0,
        send_timeout: float = 5.0,
    ) -> None:
        self.layer = layer
        self.directory = directory
        self.publisher = publisher or LayerPublisher(layer)
        self.subscriber = subscriber or LayerSubscriber(layer)
        self.registry = registry or Registry()
        self.procid = procid or make_procid()
        self.gather_deadline = gather_deadline
        self.gather_recheck = gather_recheck
        self.janitor_interval = janitor_interval
        self.send_timeout = send_timeout
        self.channel = ""
        self.started = time.time()
        self._pending: dict[str, Gathered] = {}
        self._inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._answering: set[asyncio.Task[None]] = set()
        self._declined_kinds: set[str] = set()
        self._peers: set[str] | None = None  # other live workers at the last directory scan
        self._tasks: list[asyncio.Task[None]] = []
        self._handlers: dict[str, Callable[[dict[str, Any]], Awaitable[None]]] = {
            "room.emit": self._deliver_room_emit,
            "user.renamed": self._forward_rename,
            "user.deleted": self._forget_user,
            "worker.down": self._announce_worker_down,
        }

    # ---- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        """Subscribe this worker's channel, join the cluster group, register, listen."""
        self.subscriber.listen(self._on_message)
        try:
            self.channel = await self.subscriber.new_channel("worker.")
            await self.subscriber.group_add(CLUSTER_GROUP)
            await self.directory.register(self._info())
        except BaseException:
            await self.subscriber.close()  # no reconnecting for a node that never started
            raise
        self._tasks = [
            asyncio.create_task(self._listen(), name=f"{self.procid} listener"),
            asyncio.create_task(self._janitor(), name=f"{self.procid} janitor"),
        ]
        logger.info("worker %s joined the cluster on %s", self.procid, self.channel)

    async def stop(self) -> None:
        """Leave at once so rosters stop expecting this worker."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
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
            "gc": {
                "thresholds": gc.get_threshold(),
                "frozen": gc.get_freeze_count(),
                "collections": [generation["collections"] for generation in gc.get_stats()],
            },
            "memory": memory.stats(),
            "event_loop": _event_loop_name(),
        }

    # ---- this worker's sockets ----------------------------------------------------------

    def add(self, sock: LocalSocket) -> None:
        self.registry.add(sock)

    async def remove(self, id_socket: str) -> list[str]:
        """Forget a socket; returns the rooms it was in, for announcing its departure."""
        sock = self.registry.remove(id_socket)
        if sock is None:
            return []
        for room in sock.rooms:
            if not self.registry.has_room(room):
                await self._layer_call(self.subscriber.group_discard, group_for_room(room))
        return sorted(sock.rooms)

    async def join(self, id_socket: str, room: str) -> None:
        if self.registry.join(id_socket, room):
            await self._layer_call(self.subscriber.group_add, group_for_room(room))

    async def leave(self, id_socket: str, room: str) -> None:
        if self.registry.leave(id_socket, room):
            await self._layer_call(self.subscriber.group_discard, group_for_room(room))

    async def emit_to_rooms(
        self, rooms: Sequence[str], frame: str, *, except_socket: str | None = None
    ) -> None:
        """Send one text frame to every socket in any of the rooms, each socket once.

        One message per room group; the copy for rooms[i] goes only to sockets that are
        in none of rooms[:i], so a socket in two of the rooms is not served twice.
        """
        ordered = list(dict.fromkeys(rooms))
        for index, room in enumerate(ordered):
            message = {
                "type": "room.emit",
                "rooms": ordered,
                "index": index,
                "frame": frame,
                "except": except_socket,
            }
            await self._layer_call(self.publisher.group_send, group_for_room(room), message)

    async def _layer_call(self, method: Callable[..., Awaitable[object]], *args: Any) -> None:
        """A channel-layer write that never hangs or kills a consumer when Redis is away.

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
                logger.warning("channel layer write to %s timed out after %.1f s", args[0], timeout)
                return
            except Exception as exc:  # redis-py's connection errors, OSErrors
                if attempt == 2:
                    logger.warning("channel layer write failed: %s: %s", type(exc).__name__, exc)

    # ---- cluster queries ----------------------------------------------------------------

    async def gather(self, kind: str, **args: Any) -> tuple[dict[str, Any], int]:
        """Ask every live worker one question; (replies by procid, workers expected).

        Whom to wait for comes without a directory read in the usual case: PUBLISH says how
        many workers' subscriptions it reached, and when that matches the live peers this
        worker saw at its last directory scan (the janitor scans every interval), those
        are the ones expected. When it does not match (a worker died, started, or is cut
        off while Redis still counts its subscription), the directory is read now, and also
        when a worker outside the guess answers (one died and a new one took its place,
        keeping the count). When the answers take longer than `gather_recheck`, the
        directory is read once more: a SIGKILLed worker's subscription is counted until
        Redis reads its closed connection, which on a busy machine can come after the
        query. Waits until every expected worker answered or the deadline passed; this
        worker answers itself without a round trip.
        """
        request = uuid.uuid4().hex
        gathered = Gathered()
        message = {
            "type": "cluster.query",
            "kind": kind,
            "args": args,
            "request": request,
            "reply_to": self.channel,
            "origin": self.procid,
        }
        self._pending[request] = gathered
        try:
            try:
                async with asyncio.timeout(self.gather_deadline):
                    reached = await self.publisher.group_send(CLUSTER_GROUP, message)
                others = self._peers
                guessed = others is not None and reached == len(others) + 1
                if others is None or not guessed:
                    others = self._remember_peers((await self.directory.scan())[0])
            except ClusterUnavailable:
                raise
            except Exception as exc:
                raise ClusterUnavailable(f"channel layer unreachable: {exc!r}") from exc
            gathered.expect(others, guessed=guessed)
            try:
                async with asyncio.timeout(self.gather_deadline):
                    if not await _set_within(gathered.complete, self.gather_recheck) or (
                        gathered.stale
                    ):
                        others = self._remember_peers((await self.directory.scan())[0])
                        gathered.expect(others)
                        await gathered.complete.wait()
            except TimeoutError:
                missing = sorted(others - set(gathered.replies))
                logger.warning("%s query: no answer in time from %s", kind, missing)
        finally:
            del self._pending[request]
        replies = gathered.answers()
        replies[self.procid] = self._answer(kind, args)
        return replies, len(others) + 1

    def _remember_peers(self, alive: Sequence[WorkerInfo]) -> set[str]:
        self._peers = {w.procid for w in alive} - {self.procid}
        return self._peers

    async def roster(self, room: str) -> Roster:
        replies, expected = await self.gather("roster", room=room)
        entries = [(sid, uid, procid) for procid, pairs in replies.items() for sid, uid in pairs]
        return Roster(entries=entries, expected=expected, responded=len(replies))

    async def roster_json(self, room: str) -> RosterJson:
        replies, expected = await self.gather("roster_json", room=room)
        body = b"[" + b",".join(part for part in replies.values() if part) + b"]"
        return RosterJson(json=body, expected=expected, responded=len(replies))

    async def workers(self) -> tuple[list[dict[str, Any]], int]:
        replies, expected = await self.gather("stats")
        return sorted(replies.values(), key=lambda w: (w["host"], w["procid"])), expected

    def _answer(self, kind: str, args: dict[str, Any]) -> Any:
        if kind == "roster":
            return self.registry.roster(args["room"])
        if kind == "roster_json":
            return self.registry.roster_json(args["room"], self.procid)
        if kind == "stats":
            return self.stats()
        raise ValueError(f"unknown query kind {kind!r}")

    # ---- the receive loop ---------------------------------------------------------------

    def _on_message(self, message: dict[str, Any]) -> None:
        """A reply to a query of this worker completes it at once, and a query is answered
        at once from the registry: neither waits behind room events being delivered.
        Everything else takes its turn in the inbox, in arrival order."""
        kind = message.get("type")
        if kind == "cluster.reply":
            self._take_reply(message)
        elif kind == "cluster.query":
            if message["origin"] == self.procid:
                return  # the asker answers itself without a round trip
            reply = self._reply_to(message)
            if self.publisher.send_soon(message["reply_to"], reply):
                return
            answering = asyncio.ensure_future(
                self._layer_call(self.publisher.send, message["reply_to"], reply)
            )
            self._answering.add(answering)  # held until done: the loop keeps weak references
            answering.add_done_callback(self._answering.discard)
        else:
            self._inbox.put_nowait(message)

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
        reply = {"type": "cluster.reply", "request": query["request"], "procid": self.procid}
        try:
            reply["payload"] = self._answer(query["kind"], query["args"])
        except Exception as exc:
            kind = str(query.get("kind"))
            if kind not in self._declined_kinds:  # once per kind: a deploy asks it often
                self._declined_kinds.add(kind)
                logger.warning("declining %r queries: %r", kind, exc)
            reply["declined"] = repr(exc)
        return reply

    def _take_reply(self, message: dict[str, Any]) -> None:
        gathered = self._pending.get(message["request"])
        if gathered is None:
            return  # late replies find nothing and are dropped
        if "declined" in message:
            gathered.decline(message["procid"])
        else:
            gathered.add(message["procid"], message["payload"])

    async def _deliver_room_emit(self, message: dict[str, Any]) -> None:
        rooms: list[str] = message["rooms"]
        index: int = message["index"]
        earlier = rooms[:index]
        frame: str = message["frame"]
        for sock in self.registry.in_room(rooms[index]):
            if sock.id_socket == message["except"] or (
                earlier and any(r in sock.rooms for r in earlier)
            ):
                continue
            if not sock.deliver_now(frame):
                await self._deliver(sock, frame)

    async def _forward_rename(self, message: dict[str, Any]) -> None:
        rooms = sorted(
            {room for s in self.registry.of_user(message["id_user"]) for room in s.rooms}
        )
        if rooms:
            frame = protocol.encode_event("identity-change", {"id_user": message["id_user"]})
            await self.emit_to_rooms(rooms, frame)

    async def _forget_user(self, message: dict[str, Any]) -> None:
        KNOWN_USERS.forget(message["id_user"])

    async def _announce_worker_down(self, message: dict[str, Any]) -> None:
        frame = protocol.encode_event("worker-down", {"procid": message["procid"]})
        for sock in self.registry.all():
            await self._deliver(sock, frame)

    @staticmethod
    async def _deliver(sock: LocalSocket, frame: str) -> None:
        try:
            await sock.deliver(frame)
        except Exception as exc:  # a socket closing under us must not stop the others
            logger.debug("could not deliver to %s: %s", sock.id_socket, exc)

    # ---- finding the dead ---------------------------------------------------------------

    async def _janitor(self) -> None:
        """Every interval: beat this worker's heartbeat, drop workers found dead (channel
        without subscriber, or heartbeat expired), and tell everyone.

        A worker must look dead on two scans in a row: after a Redis restart, live workers
        resubscribe within about a second and must not be declared gone meanwhile (rosters
        skip a dead worker at once anyway, from the same NUMSUB). This worker also puts
        itself back in the directory when it vanished (Redis restarted empty), but only once
        its own channel is subscribed again, so nobody sees it registered yet silent.
        """
        suspects: set[str] = set()
        while True:
            await asyncio.sleep(self.janitor_interval)
            try:
                await self.directory.heartbeat(self.procid)
                alive, dead = await self.directory.scan()
                self._remember_peers(alive)
                listed = {w.procid for w in alive} | {w.procid for w in dead}
                if self.procid not in listed and await self.directory.subscribed(self.channel):
                    await self.directory.register(self._info())
                    await self._announce_return()
                dead_now = {w.procid for w in dead} - {self.procid}
                for procid in dead_now & suspects:
                    if await self.directory.remove(procid):
                        logger.warning("worker %s is gone", procid)
                        down = {"type": "worker.down", "procid": procid}
                        await self._layer_call(self.publisher.group_send, CLUSTER_GROUP, down)
                suspects = dead_now
            except ClusterUnavailable as exc:
                logger.warning("janitor: %s", exc)

    async def _announce_return(self) -> None:
        """Back in the directory after others removed it (a partition or a Redis restart):
        peers were told `worker-down` and dropped this worker's sockets, so each socket is
        announced to its rooms again, as on a connect."""
        for sock in self.registry.all():
            if sock.rooms:
                frame = protocol.encode_event("socket-connected", sock.id_socket)
                await self.emit_to_rooms(sorted(sock.rooms), frame, except_socket=sock.id_socket)
        logger.info("worker %s rejoined the cluster", self.procid)


async def publish_rename(layer: Any, id_user: str) -> None:
    """Tell every worker that a user was renamed; each forwards it to that user's rooms."""
    await layer.group_send(CLUSTER_GROUP, {"type": "user.renamed", "id_user": id_user})


async def publish_deletion(layer: Any, id_user: str) -> None:
    """Tell every worker that a user is gone: new CONNECTs as that user are refused."""
    await layer.group_send(CLUSTER_GROUP, {"type": "user.deleted", "id_user": id_user})


def _event_loop_name() -> str:
    """uvloop.Loop under runcluster (rooms/worker_main.py), an asyncio loop elsewhere."""
    loop_type = type(asyncio.get_running_loop())
    return f"{loop_type.__module__}.{loop_type.__qualname__}"
