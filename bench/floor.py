"""The floor under GET /<room>/users: a raw Redis pub/sub scatter-gather, no framework.

A requester PUBLISHes one query on a channel that N subscriber processes listen on; each
answers on the requester's own channel with its share of a roster (size / N entries of
[id_socket, id_user], serialised with orjson per request, as a worker would); the requester
waits for all N replies and decodes them. This is what any cluster-wide roster must do at
least (shared/docs/measured-floors.md: about 1.0 ms p50 empty, 1.8 ms with 250 entries per
worker), so `our roster p50 / floor p50` says how much the app adds on top.

    python bench/floor.py --redis-url redis://127.0.0.1:6379/0 --prefix bench-x \
        [--workers 4] [--rounds 300] [--sizes 0,10,100,1000] [--out floor.json]

Prints one JSON object (and writes it to --out). Uses only redis.asyncio and orjson.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import secrets
import sys
import time
from typing import Any
from urllib.parse import urlsplit

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


# ---- subscriber process -------------------------------------------------------------------


async def serve(url: str, channel: str, index: int, workers: int) -> None:
    """Answer every query on `channel` until stdin closes (the requester went away)."""
    client = aioredis.Redis.from_url(url)
    pubsub = client.pubsub()
    await pubsub.subscribe(channel)
    rosters: dict[int, list[list[str]]] = {}
    print("ready", flush=True)
    loop = asyncio.get_running_loop()
    stdin_closed = loop.run_in_executor(None, sys.stdin.read)
    while not stdin_closed.done():
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.5)
        if message is None:
            continue
        query = orjson.loads(message["data"])
        size = int(query["size"])
        if size not in rosters:
            rosters[size] = fake_roster(share(size, workers, index))
        reply = orjson.dumps({"id": query["id"], "worker": index, "entries": rosters[size]})
        await client.publish(query["reply_to"], reply)
    await pubsub.aclose()  # type: ignore[no-untyped-call]
    await client.aclose()


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
    client: aioredis.Redis, pubsub: Any, channel: str, reply_to: str, size: int, seq: int, n: int
) -> tuple[float, int]:
    """One scatter-gather; (milliseconds, entries gathered)."""
    t0 = time.perf_counter()
    await client.publish(channel, orjson.dumps({"id": seq, "reply_to": reply_to, "size": size}))
    answered: set[int] = set()
    entries = 0
    deadline = t0 + REPLY_TIMEOUT_S
    while len(answered) < n:
        left = deadline - time.perf_counter()
        if left <= 0:
            raise TimeoutError(f"round {seq}: {len(answered)} of {n} replies")
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=left)
        if message is None:
            continue
        reply = orjson.loads(message["data"])
        if reply["id"] == seq:  # late replies of an earlier round are dropped
            answered.add(reply["worker"])
            entries += len(reply["entries"])
    return (time.perf_counter() - t0) * 1000, entries


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    token = secrets.token_hex(4)
    channel = f"{args.prefix}:floor:{token}:query"
    reply_to = f"{args.prefix}:floor:{token}:reply"
    client = aioredis.Redis.from_url(args.redis_url)
    pubsub = client.pubsub()
    await pubsub.subscribe(reply_to)
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            SELF,
            "--serve",
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
                ms, entries = await one_round(
                    client, pubsub, channel, reply_to, size, seq, args.workers
                )
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
        await pubsub.aclose()  # type: ignore[no-untyped-call]
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
        asyncio.run(serve(args.redis_url, args.channel, args.index, args.workers))
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
