"""Scatter-gather: one question to every live worker, one answer from each.

The roster is built this way rather than from presence state in Redis: each worker answers
from its own registry, so nothing can go stale when a worker dies.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from rooms.bus.directory import ClusterUnavailable, WorkerInfo
from rooms.bus.publisher import Publisher
from rooms.cluster import events
from rooms.cluster.events import CLUSTER_GROUP
from rooms.cluster.membership import Directory
from rooms.metrics.series import GATHER_SECONDS, ROSTER_REQUESTS

logger = logging.getLogger(__name__)

Answer = Callable[[str, dict[str, Any]], Any]
"""(kind, args) -> this worker's part of the answer; raises for a kind it does not know."""


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

    def outcome(self) -> str:
        """complete, declined (a worker could not answer) or partial (one did not in time)."""
        expected = self.expected or set()
        if expected <= self.replies.keys():
            return "complete"
        return "declined" if self.declined & expected else "partial"

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


class Gatherer:
    """This worker's side of scatter-gather: asking, and taking the replies to its asks.

    Answering other workers' queries is the node's (it knows what to answer with).
    """

    def __init__(
        self,
        *,
        procid: str,
        publisher: Publisher,
        directory: Directory,
        answer: Answer,
        deadline: float = 1.0,
        recheck: float = 0.1,
    ) -> None:
        self.procid = procid
        self.publisher = publisher
        self.directory = directory
        self.answer = answer
        self.deadline = deadline
        self.recheck = recheck
        self.reply_to = ""  # this worker's channel, set once subscribed
        self._pending: dict[str, Gathered] = {}
        self._peers: set[str] | None = None  # other live workers at the last directory scan

    def remember_peers(self, alive: Sequence[WorkerInfo]) -> set[str]:
        self._peers = {w.procid for w in alive} - {self.procid}
        return self._peers

    def take_reply(self, message: dict[str, Any]) -> None:
        gathered = self._pending.get(message["request"])
        if gathered is None:
            return  # late replies find nothing and are dropped
        if "declined" in message:
            gathered.decline(message["procid"])
        else:
            gathered.add(message["procid"], message["payload"])

    async def gather(self, kind: str, **args: Any) -> tuple[dict[str, Any], int]:
        """Ask every live worker one question; (replies by procid, workers expected)."""
        replies, expected = await self.gather_from(kind, **args)
        return replies, len(expected)

    async def gather_from(self, kind: str, **args: Any) -> tuple[dict[str, Any], set[str]]:
        """Ask every live worker one question; (replies by procid, procids expected).

        Whom to wait for comes without a directory read in the usual case: PUBLISH says how
        many workers' subscriptions it reached, and when that matches the live peers this
        worker saw at its last directory scan (the janitor scans every interval), those
        are the ones expected. When it does not match (a worker died, started, or is cut
        off while Redis still counts its subscription), the directory is read now, and also
        when a worker outside the guess answers (one died and a new one took its place,
        keeping the count). When the answers take longer than `recheck`, the directory is
        read once more: a SIGKILLed worker's subscription is counted until Redis reads its
        closed connection, which on a busy machine can come after the query. Waits until
        every expected worker answered or the deadline passed; this worker answers itself
        without a round trip.
        """
        started = time.perf_counter()
        message = events.query(kind, args, reply_to=self.reply_to, origin=self.procid)
        request = message["request"]
        gathered = Gathered()
        self._pending[request] = gathered
        try:
            try:
                async with asyncio.timeout(self.deadline):
                    reached = await self.publisher.group_send(CLUSTER_GROUP, message)
                others = self._peers
                guessed = others is not None and reached == len(others) + 1
                if others is None or not guessed:
                    others = self.remember_peers((await self.directory.scan())[0])
            except ClusterUnavailable:
                raise
            except Exception as exc:
                raise ClusterUnavailable(f"bus unreachable: {exc!r}") from exc
            gathered.expect(others, guessed=guessed)
            try:
                async with asyncio.timeout(self.deadline):
                    if not await _set_within(gathered.complete, self.recheck) or (gathered.stale):
                        others = self.remember_peers((await self.directory.scan())[0])
                        gathered.expect(others)
                        await gathered.complete.wait()
            except TimeoutError:
                missing = sorted(others - set(gathered.replies))
                logger.warning("%s query: no answer in time from %s", kind, missing)
        finally:
            del self._pending[request]
        replies = gathered.answers()
        replies[self.procid] = self.answer(kind, args)
        GATHER_SECONDS.labels(kind).observe(time.perf_counter() - started)
        if kind in events.ROSTER_KINDS:
            ROSTER_REQUESTS.labels(gathered.outcome()).inc()
        return replies, others | {self.procid}
