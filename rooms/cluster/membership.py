"""Which workers exist, which of them are alive right now, and telling the others.

Each worker writes one entry {procid -> its channel, pid, host, start time} into a Redis
hash. A worker is alive while both hold:
- Redis counts a subscriber on its channel (PUBSUB NUMSUB). The count drops within
  milliseconds of a SIGKILL, because the kernel closes the dead process's connection
  (bench/README.md, `make faults`), so nobody waits for a dead worker;
- its heartbeat key, refreshed every janitor interval with a TTL, has not expired. This
  catches what NUMSUB cannot: a host cut off by a partition keeps its TCP connections (and
  so its subscriptions) open on the Redis side for minutes.
A hung (SIGSTOPped) worker still counts for up to the TTL; the gather deadline bounds the
wait for it meanwhile.

With several Redis servers (a sharded bus) the hash and heartbeats live on the first, and
each channel's NUMSUB is asked of the server the bus carries it on (rooms.bus.names).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any, Protocol

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from rooms.bus.connection import VERIFIED, RedisTls, redis_py_options
from rooms.bus.names import shard_index

logger = logging.getLogger(__name__)


class ClusterUnavailable(RuntimeError):
    """Redis (the directory and the channel layer) cannot be reached."""


@dataclass(frozen=True)
class WorkerInfo:
    procid: str
    channel: str
    pid: int
    host: str
    started: float

    @classmethod
    def from_json(cls, raw: bytes) -> WorkerInfo | None:
        """A directory entry; fields this version does not know (written by a newer worker
        during a rolling deploy) are ignored, and an entry it cannot read is None."""
        try:
            entry = json.loads(raw)
            return cls(**{field.name: entry[field.name] for field in fields(cls)})
        except (ValueError, TypeError, KeyError) as exc:
            logger.warning("ignoring unreadable directory entry %r: %r", raw[:80], exc)
            return None


class Directory(Protocol):
    async def register(self, info: WorkerInfo) -> None: ...
    async def heartbeat(self, procid: str) -> None: ...
    async def unregister(self, procid: str) -> None: ...
    async def scan(self) -> tuple[list[WorkerInfo], list[WorkerInfo]]:
        """(alive, dead) among the registered workers."""
        ...

    async def remove(self, procid: str) -> bool:
        """Drop a worker's entry; True only for the one caller that removed it."""
        ...

    async def ping(self) -> None: ...
    async def subscribed(self, channel: str) -> bool:
        """Whether Redis counts a subscriber on this channel right now."""
        ...


class LocalDirectory:
    """The directory of a single process with the in-memory layer: only itself."""

    def __init__(self) -> None:
        self._workers: dict[str, WorkerInfo] = {}

    async def register(self, info: WorkerInfo) -> None:
        self._workers[info.procid] = info

    async def heartbeat(self, procid: str) -> None:
        return None

    async def unregister(self, procid: str) -> None:
        self._workers.pop(procid, None)

    async def scan(self) -> tuple[list[WorkerInfo], list[WorkerInfo]]:
        return list(self._workers.values()), []

    async def remove(self, procid: str) -> bool:
        return self._workers.pop(procid, None) is not None

    async def ping(self) -> None:
        return None

    async def subscribed(self, channel: str) -> bool:
        return True


def redis_client(url: str, timeout: float, tls: RedisTls = VERIFIED) -> aioredis.Redis:
    return aioredis.Redis.from_url(url, **redis_py_options(url, timeout, tls))


class RedisDirectory:
    def __init__(
        self,
        urls: list[str],
        *,
        prefix: str,
        ttl: float = 5.0,
        timeout: float = 1.0,
        tls: RedisTls = VERIFIED,
    ) -> None:
        self._shards = [redis_client(url, timeout, tls) for url in urls]
        self._redis = self._shards[0]
        self._key = f"{prefix}:workers"
        self._beat_prefix = f"{prefix}:alive:"
        self._ttl_ms = int(ttl * 1000)
        self._known: list[WorkerInfo] = []

    async def register(self, info: WorkerInfo) -> None:
        pipe = self._redis.pipeline(transaction=False)
        pipe.hset(self._key, info.procid, json.dumps(asdict(info)))
        pipe.set(self._beat_prefix + info.procid, 1, px=self._ttl_ms)
        await self._run(pipe)

    async def heartbeat(self, procid: str) -> None:
        await self._call(self._redis.set, self._beat_prefix + procid, 1, px=self._ttl_ms)

    async def unregister(self, procid: str) -> None:
        pipe = self._redis.pipeline(transaction=False)
        pipe.hdel(self._key, procid)
        pipe.delete(self._beat_prefix + procid)
        await self._run(pipe)

    async def remove(self, procid: str) -> bool:
        return bool(await self._call(self._redis.hdel, self._key, procid))

    async def ping(self) -> None:
        await asyncio.gather(*(self._call(shard.ping) for shard in self._shards))

    async def subscribed(self, channel: str) -> bool:
        counts = dict(await self._call(self._shard_of(channel).pubsub_numsub, channel))
        return bool(counts.get(channel.encode(), 0))

    async def scan(self) -> tuple[list[WorkerInfo], list[WorkerInfo]]:
        """The usual case is one round trip, one pipeline: the hash is read while the
        liveness of the workers seen last time is checked; only workers new since then
        cost a second one."""
        raw, live = await self._read(self._known, with_hash=True)
        workers = [w for w in map(WorkerInfo.from_json, raw.values()) if w is not None]
        unseen = [w for w in workers if w.procid not in live]
        if unseen:
            live.update((await self._read(unseen, with_hash=False))[1])
        self._known = workers
        alive = [w for w in workers if live[w.procid]]
        return alive, [w for w in workers if not live[w.procid]]

    async def _read(
        self, workers: list[WorkerInfo], *, with_hash: bool
    ) -> tuple[dict[bytes, bytes], dict[str, bool]]:
        """(the hash if asked, procid -> alive) for these workers: heartbeats from the first
        server, NUMSUB from each channel's shard. Everything asked of the first server goes
        in one pipeline; other shards are asked at the same time. Callers ask for the hash,
        or for at least one worker."""
        by_shard: dict[int, list[str]] = {}
        for worker in workers:
            by_shard.setdefault(self._shard_index(worker.channel), []).append(worker.channel)
        first = self._redis.pipeline(transaction=False)
        if with_hash:
            first.hgetall(self._key)
        if workers:
            first.mget([self._beat_prefix + w.procid for w in workers])
        if 0 in by_shard:
            first.pubsub_numsub(*by_shard[0])
        elsewhere = [
            self._call(self._shards[index].pubsub_numsub, *channels)
            for index, channels in by_shard.items()
            if index != 0
        ]
        answers, *count_lists = await asyncio.gather(self._run(first), *elsewhere)
        raw: dict[bytes, bytes] = answers.pop(0) if with_hash else {}
        beats = answers.pop(0) if workers else []
        if 0 in by_shard:
            count_lists.append(answers.pop(0))
        counts = {name: n for pairs in count_lists for name, n in pairs}
        live = {
            w.procid: beat is not None and counts.get(w.channel.encode(), 0) > 0
            for w, beat in zip(workers, beats, strict=True)
        }
        return raw, live

    def _shard_index(self, channel: str) -> int:
        # the server the bus subscribes this channel on
        return shard_index(channel, len(self._shards))

    def _shard_of(self, channel: str) -> aioredis.Redis:
        return self._shards[self._shard_index(channel)]

    async def _call(self, method: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return await method(*args, **kwargs)
        except (RedisError, OSError) as exc:
            raise ClusterUnavailable(f"Redis unreachable: {exc}") from exc

    async def _run(self, pipe: Any) -> Any:
        return await self._call(pipe.execute)


class Janitor:
    """Every interval: beat this worker's heartbeat, drop workers found dead (channel
    without subscriber, or heartbeat expired), and tell everyone.

    A worker must look dead on two scans in a row: after a Redis restart, live workers
    resubscribe within about a second and must not be declared gone meanwhile (rosters
    skip a dead worker at once anyway, from the same NUMSUB). This worker also puts itself
    back in the directory when it vanished (Redis restarted empty, or a peer removed it
    during a partition), but only once its own channel is subscribed again, so nobody sees
    it registered yet deaf; `on_return` then lets the node announce its sockets again.
    """

    def __init__(
        self,
        *,
        directory: Directory,
        info: Callable[[], WorkerInfo],
        saw_alive: Callable[[Sequence[WorkerInfo]], object],
        announce_down: Callable[[str], Awaitable[None]],
        on_return: Callable[[], Awaitable[None]],
        interval: float,
    ) -> None:
        self.directory = directory
        self.info = info
        self.saw_alive = saw_alive
        self.announce_down = announce_down
        self.on_return = on_return
        self.interval = interval
        self._suspects: set[str] = set()

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.sweep()
            except ClusterUnavailable as exc:
                logger.warning("janitor: %s", exc)

    async def sweep(self) -> None:
        me = self.info()
        await self.directory.heartbeat(me.procid)
        alive, dead = await self.directory.scan()
        self.saw_alive(alive)
        listed = {w.procid for w in alive} | {w.procid for w in dead}
        if me.procid not in listed and await self.directory.subscribed(me.channel):
            await self.directory.register(me)
            await self.on_return()
        dead_now = {w.procid for w in dead} - {me.procid}
        for procid in dead_now & self._suspects:
            if await self.directory.remove(procid):
                logger.warning("worker %s is gone", procid)
                await self.announce_down(procid)
        self._suspects = dead_now
