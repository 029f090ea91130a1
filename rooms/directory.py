"""Which workers exist and which of them are alive right now.

Each worker writes one entry {procid -> its channel, pid, host, start time} into a Redis
hash. Liveness is not a heartbeat: a worker is alive while Redis counts a subscriber on its
channel (PUBSUB NUMSUB). That count drops within milliseconds of a SIGKILL, because the
kernel closes the dead process's Redis connection (shared/docs/measured-floors.md), so
nobody waits for the dead. A hung (SIGSTOPped) worker still counts; the gather deadline
bounds the wait for it.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import redis.asyncio as aioredis
from redis.exceptions import RedisError

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


class Directory(Protocol):
    async def register(self, info: WorkerInfo) -> None: ...
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


class RedisDirectory:
    def __init__(self, url: str, *, prefix: str, timeout: float = 1.0) -> None:
        options: dict[str, Any] = {"socket_timeout": timeout, "socket_connect_timeout": timeout}
        if url.startswith("rediss://"):
            options["ssl_cert_reqs"] = None  # Heroku Redis: self-signed certificate
        self._redis = aioredis.Redis.from_url(url, **options)
        self._key = f"{prefix}:workers"
        self._known_channels: list[str] = []

    async def register(self, info: WorkerInfo) -> None:
        await self._call("hset", self._key, info.procid, json.dumps(asdict(info)))

    async def unregister(self, procid: str) -> None:
        await self._call("hdel", self._key, procid)

    async def remove(self, procid: str) -> bool:
        return bool(await self._call("hdel", self._key, procid))

    async def ping(self) -> None:
        await self._call("ping")

    async def subscribed(self, channel: str) -> bool:
        counts = dict(await self._call("pubsub_numsub", channel))
        return bool(counts.get(channel.encode(), 0))

    async def scan(self) -> tuple[list[WorkerInfo], list[WorkerInfo]]:
        """One round trip in the usual case: the hash and the counts of the channels seen
        last time travel in one pipeline; only channels new since then cost a second one."""
        known = self._known_channels
        try:
            pipe = self._redis.pipeline(transaction=False)
            pipe.hgetall(self._key)
            if known:
                pipe.pubsub_numsub(*known)
            results = await pipe.execute()
        except (RedisError, OSError) as exc:
            raise ClusterUnavailable(f"Redis unreachable: {exc}") from exc
        workers = [WorkerInfo(**json.loads(value)) for value in results[0].values()]
        counts: dict[bytes, int] = dict(results[1]) if known else {}
        unseen = [w.channel for w in workers if w.channel.encode() not in counts]
        if unseen:
            counts.update(dict(await self._call("pubsub_numsub", *unseen)))
        self._known_channels = [w.channel for w in workers]
        alive = [w for w in workers if counts.get(w.channel.encode(), 0) > 0]
        dead = [w for w in workers if counts.get(w.channel.encode(), 0) == 0]
        return alive, dead

    async def _call(self, command: str, *args: Any) -> Any:
        try:
            return await getattr(self._redis, command)(*args)
        except (RedisError, OSError) as exc:
            raise ClusterUnavailable(f"Redis unreachable: {exc}") from exc
