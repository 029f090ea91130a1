"""Which workers exist and which of them are alive right now: the directory in Redis.

Each worker writes one entry {procid -> its channel, pid, host, start time} into a Redis
hash. A worker is alive while both hold:
- Redis counts a subscriber on its channel (PUBSUB NUMSUB). The count drops within
  milliseconds of a SIGKILL, because the kernel closes the dead process's connection
  (bench/README.md, `make faults`), so nobody waits for a dead worker;
- its heartbeat key, refreshed every janitor interval with a TTL, has not expired. This
  catches what NUMSUB cannot: a host cut off by a partition keeps its TCP connections (and
  so its subscriptions) open on the Redis side for minutes.
A hung (SIGSTOPped) worker still counts for up to the TTL; the gather deadline bounds the
wait for it meanwhile. On a channel layer whose channels are not Redis subscriptions of
their own name (channels_redis's layers), the heartbeat alone says who is alive
(`counts_subscribers=False`): a killed worker is then seen within the TTL.

With several Redis servers (a sharded bus) the hash and heartbeats live on the first, and
each channel's NUMSUB is asked of the server the bus carries it on (rooms.bus.names).
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import asdict, dataclass, fields
from typing import Any

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
        counts_subscribers: bool = True,
    ) -> None:
        """`counts_subscribers`: whether a worker's channel is a Redis subscription of that
        name, whose NUMSUB says it is alive (the bus's); otherwise the heartbeat alone does."""
        self._counts_subscribers = counts_subscribers
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

    async def close(self) -> None:
        await asyncio.gather(*(shard.aclose() for shard in self._shards), return_exceptions=True)

    async def ping(self) -> None:
        await asyncio.gather(*(self._call(shard.ping) for shard in self._shards))

    async def subscribed(self, channel: str) -> bool:
        if not self._counts_subscribers:
            return True
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
        server, NUMSUB (when counted) from each channel's shard. Everything asked of the
        first server goes in one pipeline; other shards are asked at the same time. Callers
        ask for the hash, or for at least one worker."""
        by_shard: dict[int, list[str]] = {}
        for worker in workers if self._counts_subscribers else []:
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
            w.procid: beat is not None
            and (not self._counts_subscribers or counts.get(w.channel.encode(), 0) > 0)
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
