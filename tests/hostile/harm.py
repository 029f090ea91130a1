"""What every hostile-client test checks about the cluster it attacks.

`Unharmed` watches a cluster while an attack runs: a thread asks a well-behaved room's
roster every 0.1 s and keeps each answer's latency; at the end the same worker processes
are serving (none died nor restarted), every answer came within 1 s, the roster is exact,
and each worker's resident memory grew by less than `MEMORY_GROWTH_MB`. The autouse log
guard (tests/conftest.py) adds: no traceback and no ERROR line in the cluster's log.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import threading
import time
import urllib.parse
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from tests.integration.recording import Client
from tests.integration.servers import Cluster, http
from tests.integration.wire import recv_packet

ANSWER_WITHIN_S = 1.0
# A worker serving a few dozen sockets sits at 60-80 MB; an attack may cost it some
# buffers, not a leak per frame or per connection.
MEMORY_GROWTH_MB = 64


def production_env(**overrides: str) -> dict[str, str]:
    """A cluster's environment with production settings (DEBUG off, so the HTTPS settings
    on and SECURE_PROXY_SSL_HEADER with them), served over plain HTTP on the loopback."""
    return {
        "DEBUG": "off",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "127.0.0.1",
        "SECURE_SSL_REDIRECT": "off",
        **overrides,
    }


def rss_mb(pid: int) -> float:
    """VmRSS of one process, in MB (/proc/<pid>/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for {pid}")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time a process has used (/proc/<pid>/stat, proc(5))."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def workers_rss(cluster: Cluster) -> dict[int, float]:
    return {pid: rss_mb(pid) for pid in cluster.children()}


def redis_traffic(url: str) -> tuple[int, int]:
    """Bytes Redis has read from and written to all its clients so far (INFO stats)."""
    client = redis.Redis.from_url(url)
    try:
        stats: dict[str, Any] = client.info("stats")  # type: ignore[assignment]
    finally:
        client.close()
    return int(stats["total_net_input_bytes"]), int(stats["total_net_output_bytes"])


def traffic_since(url: str, before: tuple[int, int]) -> tuple[int, int]:
    """Bytes Redis has read and written since `before`, a `redis_traffic` reading."""
    now = redis_traffic(url)
    return now[0] - before[0], now[1] - before[1]


@dataclass
class Unharmed:
    """See the module docstring; `room` is the well-behaved sockets' room."""

    cluster: Cluster
    room: str
    expected_roster: list[str]  # the socket ids that must be in it throughout
    pids: list[int] = field(default_factory=list)
    rss_before: dict[int, float] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    failures: list[Any] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def _probe(self) -> None:
        url = f"{self.cluster.url}/{urllib.parse.quote(self.room, safe='')}/users"
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                status, headers, body = http(url, timeout=5)
            except OSError as exc:
                self.failures.append(repr(exc))
            else:
                took = time.monotonic() - started
                self.latencies.append(took)
                sids = sorted(entry["id_socket"] for entry in body) if status == 200 else body
                if sids != sorted(self.expected_roster):
                    responded = "{}/{} workers".format(
                        headers.get("X-Workers-Responded"), headers.get("X-Workers-Expected")
                    )
                    self.failures.append((status, sids, responded, f"{took:.2f} s"))
            self._stop.wait(0.1)

    @asynccontextmanager
    async def watching(self) -> AsyncIterator[Unharmed]:
        self.pids = self.cluster.children()
        self.rss_before = workers_rss(self.cluster)
        thread = threading.Thread(target=self._probe, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            await asyncio.to_thread(thread.join, 10)
        self.check()

    def check(self) -> None:
        assert self.cluster.children() == self.pids, "a worker died or was restarted"
        assert self.latencies, "the roster was never answered"
        assert not self.failures, self.failures[:5]
        slowest = max(self.latencies)
        assert slowest < ANSWER_WITHIN_S, f"a roster took {slowest:.2f} s during the attack"
        grown = {pid: rss_mb(pid) - before for pid, before in self.rss_before.items()}
        assert max(grown.values()) < MEMORY_GROWTH_MB, f"VmRSS grew (MB): {grown}"


async def on_worker(
    cluster: Cluster, id_user: str, room: str, wanted: Callable[[str], bool]
) -> Client:
    """A socket of `id_user` in `room` on a worker whose procid is `wanted`, reconnecting
    until the kernel puts it on one (as until_two_workers, tests/integration/recording.py)."""
    for _ in range(100):
        client = await Client().connect(cluster.url, id_user, room)
        if wanted(client.procid):
            return client
        await client.close()
        await asyncio.sleep(0.02)
    raise AssertionError("the kernel put every connection on one worker")


async def pair_on_two_workers(cluster: Cluster, room: str) -> tuple[Client, Client]:
    """Two well-behaved sockets in `room` (users 1 and 2), on different workers."""
    first = await Client().connect(cluster.url, "1", room)
    other = await on_worker(cluster, "2", room, lambda procid: procid != first.procid)
    await first.wait_for("socket-connected", lambda sid: sid == other.sid)
    return first, other


async def call(ws: Any, ack_id: int, *event: Any, within: float = 5) -> Any:
    """Send EVENT `event` with `ack_id` on a raw socket; the ack's payload (frames between
    are read and dropped)."""
    await ws.send(f"42{ack_id}{json.dumps(list(event))}")
    async with asyncio.timeout(within):
        while True:
            frame = await recv_packet(ws, within)
            if frame.startswith(f"43{ack_id}["):
                return json.loads(frame[2 + len(str(ack_id)) :])[0]


async def join_paced(ws: Any, rooms: list[str], per_second: float = 40) -> list[Any]:
    """Join each room in turn, below SOCKETIO_FRAME_RATE (50 a second by default)."""
    replies = []
    for i, room in enumerate(rooms):
        replies.append(await call(ws, i, "join", room))
        await asyncio.sleep(1 / per_second)
    return replies
