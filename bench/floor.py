"""The floor under GET /<room>/users: a raw Redis pub/sub scatter-gather, no framework.

A requester PUBLISHes one query on a channel that N subscriber processes listen on; each
answers on the requester's own channel with its share of a roster (size / N entries of
[id_socket, id_user], serialised with orjson per request, as a worker would); the requester
waits for all N replies and decodes them. This is what any cluster-wide roster must do at
least (shared/docs/measured-floors.md: about 1.0 ms p50 empty, 1.8 ms with 250 entries per
worker), so `our roster p50 / floor p50` says how much the app adds on top.

    python bench/floor.py --redis-url redis://127.0.0.1:6379/0 --prefix bench-x \
        [--client redis-py|hiredis] [--workers 4] [--rounds 300] [--sizes 0,10,100,1000] \
        [--out floor.json]

`--client redis-py` (the default, and the floor the targets use, as the issue asks) talks
through redis.asyncio; `--client hiredis` through plain asyncio connections whose replies
hiredis parses, as rooms/bus/subscriber.py and rooms/bus/publisher.py do: what a lean client costs,
the nearer bound. Prints one JSON object (and writes it to --out). Uses only redis.asyncio,
hiredis and orjson.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import secrets
import sys
import time
from typing import Any, Protocol
from urllib.parse import urlsplit

import hiredis
import orjson
import redis.asyncio as aioredis

SELF = os.path.abspath(__file__)
READY_TIMEOUT_S = 15.0
REPLY_TIMEOUT_S = 2.0


def share(size: int, workers: int, index: int) -> int:
    """Entries held by worker `index` when `size` sockets are spread evenly over `workers`."""
    return size // workers + (1 if index < size % workers else 0)


def fake_roster(count: int) -> list[list[str]]:
    return [[secrets.token_urlsafe(15), str(i % 10 + 1)] for i in range(count)]


def percentile(sorted_ms: list[float], p: float) -> float:
    """Nearest rank, as the Node harness (bench/common.js) computes it."""
    rank = math.ceil(p / 100 * len(sorted_ms)) - 1
    return sorted_ms[min(len(sorted_ms) - 1, max(0, rank))]


def stats(samples_ms: list[float]) -> dict[str, Any]:
    s = sorted(samples_ms)
    return {
        "n": len(s),
        "min": round(s[0], 3),
        "p50": round(percentile(s, 50), 3),
        "p90": round(percentile(s, 90), 3),
        "p99": round(percentile(s, 99), 3),
        "max": round(s[-1], 3),
        "mean": round(sum(s) / len(s), 3),
    }


# ---- the two ways to talk pub/sub ---------------------------------------------------------


class PubSub(Protocol):
    """One connection's view: PUBLISH anywhere, messages of the one channel subscribed."""

    async def publish(self, channel: str, data: bytes) -> None: ...
    async def next_message(self, wait_s: float) -> bytes | None: ...
    async def close(self) -> None: ...


class RedisPyPubSub:
    """redis.asyncio, as most Python code (channels_redis included) talks to Redis."""

    def __init__(self, url: str) -> None:
        self.client = aioredis.Redis.from_url(url)
        self.pubsub = self.client.pubsub()

    @classmethod
    async def open(cls, url: str, channel: str) -> RedisPyPubSub:
        opened = cls(url)
        await opened.pubsub.subscribe(channel)
        return opened

    async def publish(self, channel: str, data: bytes) -> None:
        await self.client.publish(channel, data)

    async def next_message(self, wait_s: float) -> bytes | None:
        message = await self.pubsub.get_message(ignore_subscribe_messages=True, timeout=wait_s)
        return None if message is None else bytes(message["data"])

    async def close(self) -> None:
        await self.pubsub.aclose()  # type: ignore[no-untyped-call]
        await self.client.aclose()


def command(*parts: bytes) -> bytes:
    return b"".join([b"*%d\r\n" % len(parts), *(b"$%d\r\n%b\r\n" % (len(p), p) for p in parts)])


class HiredisConnection(asyncio.Protocol):
    """A plain asyncio connection whose replies hiredis parses; messages go to a queue."""

    def __init__(self) -> None:
        self.reader = hiredis.Reader()
        self.messages: asyncio.Queue[bytes] = asyncio.Queue()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        while (reply := self.reader.gets()) is not False:
            if isinstance(reply, list) and reply[0] == b"message":
                self.messages.put_nowait(reply[2])

    def send(self, *parts: bytes) -> None:
        assert self.transport is not None
        self.transport.write(command(*parts))


class HiredisPubSub:
    """What a lean client costs: asyncio connections fed to hiredis (as rooms/bus/subscriber.py
    reads and rooms/bus/publisher.py writes), without waiting for PUBLISH's count."""

    def __init__(self, publisher: HiredisConnection, subscriber: HiredisConnection) -> None:
        self.publisher = publisher
        self.subscriber = subscriber

    @classmethod
    async def open(cls, url: str, channel: str) -> HiredisPubSub:
        parts = urlsplit(url)
        loop = asyncio.get_running_loop()
        address = (parts.hostname or "127.0.0.1", parts.port or 6379)
        _, publisher = await loop.create_connection(HiredisConnection, *address)
        _, subscriber = await loop.create_connection(HiredisConnection, *address)
        subscriber.send(b"SUBSCRIBE", channel.encode())
        return cls(publisher, subscriber)

    async def publish(self, channel: str, data: bytes) -> None:
        self.publisher.send(b"PUBLISH", channel.encode(), data)

    async def next_message(self, wait_s: float) -> bytes | None:
        try:
            return await asyncio.wait_for(self.subscriber.messages.get(), wait_s)
        except TimeoutError:
            return None

    async def close(self) -> None:
        for connection in (self.publisher, self.subscriber):
            if connection.transport is not None:
                connection.transport.close()


CLIENTS: dict[str, Any] = {"redis-py": RedisPyPubSub, "hiredis": HiredisPubSub}


# ---- subscriber process -------------------------------------------------------------------


async def serve(client: str, url: str, channel: str, index: int, workers: int) -> None:
    """Answer every query on `channel` until stdin closes (the requester went away)."""
    pubsub: PubSub = await CLIENTS[client].open(url, channel)
    rosters: dict[int, list[list[str]]] = {}
    print("ready", flush=True)
    loop = asyncio.get_running_loop()
    stdin_closed = loop.run_in_executor(None, sys.stdin.read)
    while not stdin_closed.done():
        data = await pubsub.next_message(0.5)
        if data is None:
            continue
        query = orjson.loads(data)
        size = int(query["size"])
        if size not in rosters:
            rosters[size] = fake_roster(share(size, workers, index))
        reply = orjson.dumps({"id": query["id"], "worker": index, "entries": rosters[size]})
        await pubsub.publish(query["reply_to"], reply)
    await pubsub.close()


# ---- requester ----------------------------------------------------------------------------


async def wait_subscribed(client: aioredis.Redis, channel: str, workers: int) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        counts = dict(await client.pubsub_numsub(channel))
        if counts.get(channel.encode(), 0) >= workers:
            return
        await asyncio.sleep(0.05)
    raise TimeoutError(f"{workers} subscribers did not subscribe to {channel} in time")


async def one_round(
    pubsub: PubSub, channel: str, reply_to: str, size: int, seq: int, n: int
) -> tuple[float, int]:
    """One scatter-gather; (milliseconds, entries gathered)."""
    t0 = time.perf_counter()
    await pubsub.publish(channel, orjson.dumps({"id": seq, "reply_to": reply_to, "size": size}))
    answered: set[int] = set()
    entries = 0
    deadline = t0 + REPLY_TIMEOUT_S
    while len(answered) < n:
        left = deadline - time.perf_counter()
        if left <= 0:
            raise TimeoutError(f"round {seq}: {len(answered)} of {n} replies")
        data = await pubsub.next_message(left)
        if data is None:
            continue
        reply = orjson.loads(data)
        if reply["id"] == seq:  # late replies of an earlier round are dropped
            answered.add(reply["worker"])
            entries += len(reply["entries"])
    return (time.perf_counter() - t0) * 1000, entries


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    token = secrets.token_hex(4)
    channel = f"{args.prefix}:floor:{token}:query"
    reply_to = f"{args.prefix}:floor:{token}:reply"
    client = aioredis.Redis.from_url(args.redis_url)  # for NUMSUB
    pubsub: PubSub = await CLIENTS[args.client].open(args.redis_url, reply_to)
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            SELF,
            "--serve",
            "--client",
            args.client,
            "--redis-url",
            args.redis_url,
            "--channel",
            channel,
            "--index",
            str(i),
            "--workers",
            str(args.workers),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        for i in range(args.workers)
    ]
    out: dict[str, Any] = {
        "bench": "floor",
        "client": args.client,
        "workers": args.workers,
        "rounds": args.rounds,
        "what": "PUBLISH a query to N subscriber processes, gather N replies of size/N "
        "[id_socket, id_user] entries (orjson), decode them",
        "sizes": {},
    }
    try:
        for proc in procs:
            assert proc.stdout is not None
            await asyncio.wait_for(proc.stdout.readline(), READY_TIMEOUT_S)
        await wait_subscribed(client, channel, args.workers)
        seq = 0
        for size in args.sizes:
            samples: list[float] = []
            for i in range(args.warmup + args.rounds):
                seq += 1
                ms, entries = await one_round(pubsub, channel, reply_to, size, seq, args.workers)
                if entries != size:
                    raise RuntimeError(f"size {size}: gathered {entries} entries")
                if i >= args.warmup:
                    samples.append(ms)
            out["sizes"][str(size)] = stats(samples)
    finally:
        for proc in procs:
            if proc.stdin is not None:
                proc.stdin.close()
        for proc in procs:
            try:
                await asyncio.wait_for(proc.wait(), 3)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        await pubsub.close()
        await client.aclose()
    out["loadavg_end"] = list(os.getloadavg())
    return out


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--prefix", default="bench-floor")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument(
        "--sizes",
        type=lambda s: [int(x) for x in s.split(",") if x],
        default=[0, 10, 100, 1000],
        help="room sizes (entries in all, spread over the workers)",
    )
    parser.add_argument(
        "--client",
        choices=sorted(CLIENTS),
        default="redis-py",
        help="redis-py: redis.asyncio (the floor the targets use); hiredis: plain asyncio "
        "connections fed to hiredis, what a lean client costs",
    )
    parser.add_argument("--out", default="")
    # subscriber mode (started by the requester)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--channel", default="", help=argparse.SUPPRESS)
    parser.add_argument("--index", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    host = urlsplit(args.redis_url).hostname
    if host not in ("127.0.0.1", "localhost", "::1"):
        parser.error(f"the floor only targets a local Redis, not {host}")
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if args.serve:
        asyncio.run(serve(args.client, args.redis_url, args.channel, args.index, args.workers))
        return 0
    out = asyncio.run(measure(args))
    text = orjson.dumps(out, option=orjson.OPT_INDENT_2).decode()
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
