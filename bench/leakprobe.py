"""Where does a worker's memory go per reconnect? One daphne worker, RSS per round of cycles.

    .venv/bin/python bench/leakprobe.py [--warmup 1000] [--cycles 2000] [--rounds 3] [--trace]

Starts one daphne worker of ours (own SQLite file, own Redis prefix) and drives full cycles
through it, `--concurrency` at a time: connect, CONNECT with an id_user, join a room,
identity-change, GET the room's roster, close, PUT a rename. After the warm-up and after each
round it collects garbage in the worker (SIGUSR1) and prints its RSS and the growth per
reconnect. With --trace the worker runs under tracemalloc and the heap lines that grew from
the first snapshot to the last are printed per reconnect: a leak is a line whose growth
scales with the number of cycles; allocator warm-up shows as RSS that levels off while the
traced heap stays flat.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import aiohttp
import websockets

ROOT = Path(__file__).resolve().parent.parent


def serve(port: int, snapshot_dir: str, trace: bool) -> None:
    """In the worker: SIGUSR1 collects garbage (and writes a heap snapshot), then daphne runs."""
    if trace:
        tracemalloc.start(25)
    taken = 0

    def snapshot(_signum: int, _frame: object) -> None:
        nonlocal taken
        taken += 1
        gc.collect()  # Twisted protocols die in reference cycles: count only what is kept
        if trace:
            tracemalloc.take_snapshot().dump(f"{snapshot_dir}/{taken}.snap")
        Path(f"{snapshot_dir}/{taken}.done").touch()

    signal.signal(signal.SIGUSR1, snapshot)
    import uvloop  # as rooms/runner/worker_main.py: the loop daphne makes is uvloop's

    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    from daphne.cli import CommandLineInterface

    sys.argv = [
        "daphne",
        "-b",
        "127.0.0.1",
        "-p",
        str(port),
        "identity_playground.asgi:application",
    ]
    CommandLineInterface.entrypoint()


async def one_cycle(base: str, id_user: int, room: str, http: aiohttp.ClientSession) -> None:
    """Connect, join, rename through the socket, read the room's roster, rename over HTTP."""
    url = base.replace("http", "ws", 1) + "/socket.io/?EIO=4&transport=websocket"
    async with websockets.connect(url) as ws:
        await ws.recv()  # Engine.IO OPEN
        await ws.send(f'40{{"id_user":"{id_user}"}}')
        await until(ws, "40")
        await ws.send(f'420["join","{room}"]')
        await until(ws, "430")
        await ws.send('421["identity-change",{"name":"x"}]')
        await until(ws, "431")
        async with http.get(f"{base}/{room}/users") as response:
            assert response.status == 200, response.status
            await response.read()
    body = {"name": f"user {id_user}"}
    async with http.put(f"{base}/users/{id_user}", json=body) as response:
        assert response.status == 204, (response.status, await response.text())


async def until(ws: websockets.ClientConnection, prefix: str) -> None:
    while not str(await ws.recv()).startswith(prefix):
        pass


async def churn(base: str, cycles: int, concurrency: int) -> None:
    counter = iter(range(cycles))
    async with aiohttp.ClientSession() as http:

        async def lane() -> None:
            for n in counter:
                await one_cycle(base, 1 + n % 10, f"leak-{n % 20}", http)

        await asyncio.gather(*(lane() for _ in range(concurrency)))


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def settle(worker: subprocess.Popen[bytes], snapshot_dir: str, number: int) -> int:
    """Let closes and group discards finish, collect garbage in the worker; its RSS in KB."""
    time.sleep(2)
    worker.send_signal(signal.SIGUSR1)
    done = Path(f"{snapshot_dir}/{number}.done")
    while not done.exists():
        time.sleep(0.1)
    return rss_kb(worker.pid)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--snapshot-dir", help=argparse.SUPPRESS)
    parser.add_argument("--malloc-arena-max", help="MALLOC_ARENA_MAX for the worker")
    parser.add_argument("--cycles", type=int, default=2000, help="reconnects per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--trace", action="store_true", help="tracemalloc diff, first to last")
    parser.add_argument("--warmup", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.snapshot_dir, args.trace)
        return

    work = tempfile.mkdtemp(prefix="leakprobe-")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{work}/db.sqlite3",
        "REDIS_URL": os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"),
        "CHANNEL_PREFIX": f"leakprobe-{os.getpid()}",
        "DEBUG": "off",
        "SECRET_KEY": "leakprobe-" + os.urandom(16).hex(),
        "ALLOWED_HOSTS": "127.0.0.1",
        "SECURE_SSL_REDIRECT": "off",
        "SECURE_PROXY_SSL_HEADER": "off",
        "HTTP_RENAMES_PER_MINUTE_PER_ADDRESS": "0",  # every cycle renames, all from 127.0.0.1
        "DJANGO_SETTINGS_MODULE": "identity_playground.settings",
    }
    if args.malloc_arena_max:
        env["MALLOC_ARENA_MAX"] = args.malloc_arena_max
    manage = [sys.executable, str(ROOT / "manage.py")]
    subprocess.run([*manage, "reset_db"], env=env, cwd=ROOT, check=True, capture_output=True)
    command = [sys.executable, __file__, "--serve", str(port), "--snapshot-dir", work]
    command += ["--trace"] if args.trace else []
    with open(f"{work}/worker.log", "wb") as log:
        worker = subprocess.Popen(command, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):  # importing Django under tracemalloc takes a while
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if worker.poll() is not None:
                    raise SystemExit(f"the worker exited: see {work}/worker.log") from None
                time.sleep(0.1)
        asyncio.run(churn(url, args.warmup, args.concurrency))
        rss = [settle(worker, work, 1)]
        print(f"after {args.warmup} warm-up reconnects: RSS {rss[0]} KB", flush=True)
        for number in range(2, args.rounds + 2):
            started = time.monotonic()
            asyncio.run(churn(url, args.cycles, args.concurrency))
            elapsed = time.monotonic() - started
            rss.append(settle(worker, work, number))
            grown = (rss[-1] - rss[-2]) * 1024 / args.cycles
            print(
                f"round {number - 1}: {args.cycles} reconnects in {elapsed:.1f} s, "
                f"RSS {rss[-1]} KB ({grown:+.0f} B/reconnect)",
                flush=True,
            )
    finally:
        worker.terminate()
        try:
            worker.wait(10)
        except subprocess.TimeoutExpired:
            worker.kill()
    if args.trace:
        print_growth(work, args.rounds + 1, args.cycles * args.rounds, args.top)
    print(f"\nworker log: {work}/worker.log")


def print_growth(work: str, last: int, cycles: int, top: int) -> None:
    """The heap lines that grew from the first snapshot to the last, per reconnect."""
    before = tracemalloc.Snapshot.load(f"{work}/1.snap")
    after = tracemalloc.Snapshot.load(f"{work}/{last}.snap")
    traced = sum(s.size for s in after.statistics("filename")) - sum(
        s.size for s in before.statistics("filename")
    )
    print(f"traced Python heap: {traced / cycles:+.0f} B/reconnect over {cycles}")
    for stat in after.compare_to(before, "traceback")[:top]:
        print(f"\n{stat.size_diff / cycles:+8.1f} B/reconnect {stat.count_diff:+6d} blocks")
        for line in stat.traceback.format()[-8:]:
            print("   ", line)


if __name__ == "__main__":
    main()
