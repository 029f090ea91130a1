"""The cluster: rosters gathered from every worker, and the faults it must survive.

Real runcluster processes (4 daphne workers) on a real Redis, python-socketio clients; the
contract's tests run on each channel layer the cluster runs on (`cluster4`'s params).
"""

from __future__ import annotations

import ast
import asyncio
import json
import os
import re
import signal
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator, Callable
from itertools import groupby
from urllib.parse import quote

import pytest
import redis
from django.conf import settings
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.recording import Client, close_all, connect_many, spread_clients
from tests.integration.servers import LAYER_BACKENDS, Cluster, RedisServer, http, wait_until

pytestmark = pytest.mark.integration


def roster(cluster: Cluster, room: str, query: str = "") -> tuple[int, dict[str, str], list]:
    return http(f"{cluster.url}/{quote(room, safe='')}/users{query}")


async def test_roster_lists_every_socket_across_workers(cluster4: Cluster) -> None:
    """20 sockets on several workers appear exactly once each, with their id_user."""
    clients = await spread_clients(cluster4.url, "everyone", 20)
    try:
        status, headers, body = roster(cluster4, "everyone")
        assert status == 200
        assert sorted((e["id_socket"], e["id_user"]) for e in body) == sorted(
            (c.sid, str(i % 10 + 1)) for i, c in enumerate(clients)
        )
        assert len(body) >= 20
        assert all(e["data"] == {} for e in body)
        assert {e["procid"] for e in body} == {c.procid for c in clients}
        assert headers["X-Workers-Expected"] == headers["X-Workers-Responded"] == "4"
        assert "Transfer-Encoding" not in headers  # a plain body of a known length
        assert int(headers["Content-Length"]) == len(json.dumps(body, separators=(",", ":")))
        runs = [procid for procid, _ in groupby(e["procid"] for e in body)]
        assert len(runs) == len(set(runs)), runs  # grouped by worker, in no other order
    finally:
        await close_all(clients)
    await asyncio.to_thread(
        wait_until,
        lambda: roster(cluster4, "everyone")[2] == [],
        10,
        "the room to empty after every client left",
    )


async def test_hydrate_adds_names(cluster4: Cluster) -> None:
    """?hydrate=1 puts each user's name in data."""
    clients = await connect_many(cluster4.url, [("3", "hydrated"), ("7", "hydrated")])
    try:
        body = roster(cluster4, "hydrated", "?hydrate=1")[2]
        assert sorted((e["id_user"], e["data"]["name"]) for e in body) == [
            ("3", "Mike"),
            ("7", "Sonia"),
        ]
    finally:
        await close_all(clients)


async def test_rooms_do_not_leak_and_odd_names_work(cluster4: Cluster) -> None:
    """Each room lists only its own sockets, whatever characters its name has."""
    names = ["a", "b", "ünïcødé 房间", "with/slash and %", "x" * 100]
    clients = await connect_many(cluster4.url, [("1", quote(n, safe="")) for n in names])
    try:
        for name, client in zip(names, clients, strict=True):
            status, _, body = roster(cluster4, name)
            assert status == 200, name
            assert [e["id_socket"] for e in body] == [client.sid], name
        assert roster(cluster4, "x" * 101)[0] == 400
    finally:
        await close_all(clients)


async def test_identity_change_crosses_workers(cluster4: Cluster) -> None:
    """A socket's identity-change reaches room members on other workers, stamped."""
    clients = await spread_clients(cluster4.url, "gossip", 8)
    sender = clients[0]
    others = [c for c in clients[1:] if c.procid != sender.procid]
    try:
        await sender.sio.emit("identity-change", {"name": "Johnny", "id_user": "9"})
        for other in others:
            got = await other.wait_for("identity-change")
            assert got == {"name": "Johnny", "id_user": "1"}
        # A marker sent after Johnny, on the room's one channel: Redis delivers a channel's
        # messages in order, so an echo of Johnny to its sender would arrive before it.
        await others[0].sio.emit("identity-change", {"name": "marker"})
        await sender.wait_for("identity-change")
        assert [p["name"] for p in sender.payloads("identity-change")] == ["marker"]
    finally:
        await close_all(clients)


async def test_api_rename_reaches_rooms_on_other_workers(cluster4: Cluster) -> None:
    """PUT /users/<id> makes every room holding that user get identity-change."""
    clients = await spread_clients(cluster4.url, "renames", 8)
    bystander = await Client().connect(cluster4.url, "5", "elsewhere-only")
    neighbour = await Client().connect(cluster4.url, "6", "elsewhere-only")
    try:
        status, _, _ = http(f"{cluster4.url}/users/5", "PUT", {"name": "Steph"})
        assert status == 204
        for client in clients:  # user 5 (clients[4]) is in the room
            assert await client.wait_for("identity-change") == {"id_user": "5"}
        # Renaming user 6 (in the bystander's room) is a marker on the same cluster channel
        # as the first rename: a duplicate of that one would reach the bystander before it.
        status, _, _ = http(f"{cluster4.url}/users/6", "PUT", {"name": "Jo"})
        assert status == 204
        await bystander.wait_for("identity-change", lambda p: p == {"id_user": "6"})
        assert bystander.payloads("identity-change") == [{"id_user": "5"}, {"id_user": "6"}]
    finally:
        http(f"{cluster4.url}/users/5", "PUT", {"name": "Stephanie"})
        http(f"{cluster4.url}/users/6", "PUT", {"name": "Richard"})
        await close_all([*clients, bystander, neighbour])


async def test_workers_and_healthz(cluster4: Cluster) -> None:
    """/workers lists the 4 workers with their pids, tuned collectors, memory and event
    loop; /healthz is 200."""
    workers = cluster4.live_workers()
    assert sorted(w["pid"] for w in workers) == sorted(cluster4.children())
    assert {"procid", "pid", "host", "sockets", "rooms", "started"} <= set(workers[0])
    for worker in workers:  # tuned at start-up (rooms.runner.lifecycle.tune_garbage_collector)
        assert worker["gc"]["thresholds"] == settings.WORKER_GC_THRESHOLDS, worker
        assert worker["gc"]["frozen"] > 10_000, worker
        assert worker["memory"]["rss_kb"] > 10_000, worker
        assert worker["event_loop"] == "uvloop.Loop", worker  # rooms.runner.worker_main
    status, _, body = http(f"{cluster4.url}/healthz")
    assert (status, body["ok"]) == (200, True)


async def test_rooms_lists_the_rooms_in_use_with_their_counts_across_workers(
    cluster4: Cluster,
) -> None:
    """GET /rooms sums each room's sockets over the workers, largest first; `prefix` and
    `limit` narrow it; a bad limit is 400."""
    tag = f"in-use-{uuid.uuid4().hex[:8]}"
    big = await spread_clients(cluster4.url, f"{tag}-big", 8)
    small = await connect_many(cluster4.url, [("1", f"{tag}-small"), ("2", f"{tag}-small")])
    try:
        status, headers, body = http(f"{cluster4.url}/rooms?prefix={tag}")
        assert status == 200
        assert body == [
            {"room": f"{tag}-big", "sockets": len(big)},  # spread_clients may open more than 8
            {"room": f"{tag}-small", "sockets": 2},
        ]
        assert headers["X-Workers-Expected"] == headers["X-Workers-Responded"] == "4"
        assert http(f"{cluster4.url}/rooms?prefix={tag}&limit=1")[2] == body[:1]
        assert http(f"{cluster4.url}/rooms?prefix={tag}-small")[2] == body[1:]
        for limit in ("0", "1001", "x"):
            assert http(f"{cluster4.url}/rooms?limit={limit}")[0] == 400
    finally:
        await close_all([*big, *small])


def scrape(cluster: Cluster, headers: dict[str, str] | None = None) -> dict[str, Metric]:
    """GET /metrics, parsed by prometheus-client's own parser: {family name: family}."""
    request = urllib.request.Request(f"{cluster.url}/metrics", headers=headers or {})
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = response.read().decode()
    return {family.name: family for family in text_string_to_metric_families(text)}


def sockets_per_worker(families: dict[str, Metric]) -> dict[str, float]:
    return {s.labels["procid"]: s.value for s in families["identity_playground_sockets"].samples}


async def test_one_scrape_shows_every_worker(cluster4: Cluster) -> None:
    """GET /metrics on any worker: each live worker's series labelled with its procid, the
    sockets summing to those open, every worker up, and the series an operator alerts on."""
    clients = await spread_clients(cluster4.url, f"scraped-{uuid.uuid4().hex[:8]}", 8)
    try:
        await asyncio.to_thread(  # sockets other tests of the module closed are gone
            wait_until,
            lambda: sum(w["sockets"] for w in http(f"{cluster4.url}/workers")[2]) == len(clients),
            10,
            "only this test's sockets to be open",
        )
        families = scrape(cluster4)
        procids = {w["procid"] for w in http(f"{cluster4.url}/workers")[2]}
        assert sockets_per_worker(families).keys() == procids and len(procids) == 4
        assert sum(sockets_per_worker(families).values()) == len(clients)
        up = families["identity_playground_worker_up"].samples
        assert {(s.labels["procid"], s.value) for s in up} == {(p, 1.0) for p in procids}
        connects = families["identity_playground_connects"].samples
        assert sum(s.value for s in connects) >= len(clients)
        outcomes = {
            s.labels["outcome"] for s in families["identity_playground_roster_requests"].samples
        }
        assert outcomes == {"complete", "partial", "declined"}
        for name in ("gather_duration_seconds", "bus_reconnects", "limit_closes", "rooms",
                     "events_received", "events_delivered", "disconnects"):  # fmt: skip
            assert f"identity_playground_{name}" in families, name
    finally:
        await close_all(clients)


async def test_django_code_reaches_and_asks_every_worker(cluster4: Cluster) -> None:
    """From another process with the cluster's settings (a management command, a cron
    job): `emit_to_room` reaches the room's sockets on every worker, and the admin's
    "online now" counts the sockets of every worker (the module's other tests may leave a
    socket or two behind for a moment: only these clients' users are checked)."""
    clients = await spread_clients(cluster4.url, "from-django", 8)
    try:
        output = await asyncio.to_thread(
            cluster4.shell,
            "from rooms.runtime import emit_to_room, sockets_per_user\n"
            "emit_to_room('from-django', 'news', {'n': 1})\n"
            "print(sorted(sockets_per_user().items()))",
        )
        for client in clients:
            assert await client.wait_for("news") == {"n": 1}
        counts = dict(ast.literal_eval(output.strip().splitlines()[-1]))
        assert all(counts.get(str(n), 0) >= 1 for n in range(1, 9)), output
    finally:
        await close_all(clients)


@pytest.mark.parametrize("layer", ["channels_redis.pubsub", "channels_redis.core"])
async def test_a_killed_worker_is_announced_down_on_channels_redis_layers(
    start_cluster: Callable[..., Cluster], layer: str
) -> None:
    """On a layer whose channels Redis does not count subscribers of, a worker's heartbeat
    alone says it is alive: within the TTL of a SIGKILL its peers' sockets get worker-down
    and rosters expect only the live workers (the survivor and the dead one's successor)."""
    cluster = start_cluster(
        workers=2, CHANNEL_LAYER_BACKEND=LAYER_BACKENDS[layer], CLUSTER_WORKER_TTL="2"
    )
    clients = await spread_clients(cluster.url, "faults", 6)
    try:
        victim = clients[0].procid
        os.kill(pid_of(cluster, victim), signal.SIGKILL)
        survivors = [c for c in clients if c.procid != victim]
        for client in survivors:
            assert await client.wait_for("worker-down", within=10) == {"procid": victim}
        status, headers, body = await asyncio.to_thread(roster, cluster, "faults")
        assert status == 200
        assert sorted(e["id_socket"] for e in body) == sorted(c.sid for c in survivors)
        assert headers["X-Workers-Expected"] == headers["X-Workers-Responded"]  # its successor's
        assert victim not in {e["procid"] for e in body}
    finally:
        await close_all(clients)


# ---- faults: each test gets its own cluster ------------------------------------------


@pytest.fixture
async def faulty(
    start_cluster: Callable[..., Cluster],
) -> AsyncIterator[tuple[Cluster, list[Client]]]:
    cluster = start_cluster(workers=4)
    clients = await spread_clients(cluster.url, "faults", 16)
    yield cluster, clients
    await close_all(clients)


def pid_of(cluster: Cluster, procid: str) -> int:
    return next(w["pid"] for w in cluster.live_workers() if w["procid"] == procid)


def subscriber_count(cluster: Cluster, procid: str) -> Callable[[], int]:
    """How many subscribers Redis counts on this worker's channel, asked anew each call."""
    client = redis.Redis.from_url(cluster.redis_url)
    channel = json.loads(client.hget(f"{cluster.prefix}:workers", procid))["channel"]
    return lambda: int(client.pubsub_numsub(channel)[0][1])


async def test_killed_worker_is_not_waited_for_and_is_restarted(
    start_cluster: Callable[..., Cluster],
) -> None:
    """After SIGKILL: rosters answer at once without its sockets, peers get worker-down,
    and the parent starts a replacement."""
    # A gather deadline far above this machine's noise: a roster that waited for the dead
    # worker would take the whole of it, one that did not takes a fraction.
    deadline = 5.0
    cluster = start_cluster(workers=4, CLUSTER_GATHER_DEADLINE=str(deadline))
    clients = await spread_clients(cluster.url, "faults", 16)
    try:
        victim = clients[0].procid
        victim_pid = pid_of(cluster, victim)
        subscribers = subscriber_count(cluster, victim)
        os.kill(victim_pid, signal.SIGKILL)
        # Redis drops the dead process's subscriptions once it reads the closed connection:
        # within milliseconds, or later when this machine is busy
        await asyncio.to_thread(wait_until, lambda: subscribers() == 0, 5, "Redis to notice")
        started = time.monotonic()
        status, headers, body = await asyncio.to_thread(roster, cluster, "faults")
        took = time.monotonic() - started
        assert took < deadline / 3, f"the roster waited {took:.2f} s for a dead worker"
        assert status == 200
        assert victim not in {e["procid"] for e in body}
        assert headers["X-Workers-Expected"] == headers["X-Workers-Responded"]
        survivors = [c for c in clients if c.procid != victim]
        assert sorted(e["id_socket"] for e in body) == sorted(c.sid for c in survivors)
        for client in survivors:
            assert await client.wait_for("worker-down", within=5) == {"procid": victim}
        await asyncio.to_thread(
            wait_until,
            lambda: len(cluster.children()) == 4 and victim_pid not in cluster.children(),
            10,
            "a replacement worker",
        )
        await asyncio.to_thread(cluster.wait_for_workers, 4)
    finally:
        await close_all(clients)


async def test_hung_worker_costs_at_most_the_deadline(
    faulty: tuple[Cluster, list[Client]],
) -> None:
    """A SIGSTOPped worker still looks alive: the roster waits the 1 s deadline, then answers
    partially, saying so in the headers."""
    cluster, clients = faulty
    victim = clients[0].procid
    victim_pid = pid_of(cluster, victim)
    os.kill(victim_pid, signal.SIGSTOP)
    try:
        for _ in range(3):  # the kernel may hand a request to the hung worker itself
            started = time.monotonic()
            try:
                status, headers, body = await asyncio.to_thread(roster, cluster, "faults")
            except OSError:
                continue
            elapsed = time.monotonic() - started
            assert status == 200
            # at least the 1 s deadline; the upper bound only tells "bounded" from the
            # client's own 5 s timeout, with room for this machine's scheduling noise
            assert 0.9 < elapsed < 3.5
            assert (headers["X-Workers-Expected"], headers["X-Workers-Responded"]) == ("4", "3")
            assert victim not in {e["procid"] for e in body}
            assert len(body) == len([c for c in clients if c.procid != victim])
            break
        else:
            pytest.fail("every request went to the hung worker")
    finally:
        os.kill(victim_pid, signal.SIGCONT)


async def test_redis_outage_gives_503_then_recovers(
    private_redis: RedisServer, start_cluster: Callable[..., Cluster]
) -> None:
    """Redis stopped: rosters answer 503 within 2 s and sockets stay connected; Redis back:
    rosters work again without restarting anything."""
    cluster = start_cluster(workers=2, redis=private_redis)
    clients = await connect_many(cluster.url, [("1", "outage"), ("2", "outage")])
    try:
        private_redis.stop()
        for path in ("/outage/users", "/healthz", "/workers"):
            started = time.monotonic()
            status, _, body = await asyncio.to_thread(http, cluster.url + path)
            assert status == 503, path
            assert time.monotonic() - started < 2.0
        assert all(c.sio.connected for c in clients)
        private_redis.start()

        def recovered() -> bool:
            status, _, body = roster(cluster, "outage")
            return status == 200 and len(body) == 2 and len(cluster.live_workers()) == 2

        await asyncio.to_thread(wait_until, recovered, 15, "the cluster after Redis came back")
        await clients[0].sio.emit("identity-change", {"name": "back"})
        assert (await clients[1].wait_for("identity-change"))["id_user"] == "1"
    finally:
        await close_all(clients)


async def test_sigterm_stops_every_worker(start_cluster: Callable[..., Cluster]) -> None:
    """SIGTERM to runcluster stops all workers well within 10 s and exits cleanly."""
    cluster = start_cluster(workers=2)
    assert cluster.process is not None
    workers = cluster.children()
    started = time.monotonic()
    cluster.process.send_signal(signal.SIGTERM)
    assert cluster.process.wait(12) == 0
    assert time.monotonic() - started < 10
    for pid in workers:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


async def test_worker_down_comes_once_per_dead_worker(
    start_cluster: Callable[..., Cluster],
) -> None:
    """SIGKILL one worker of three: a socket on a surviving worker gets exactly one
    worker-down for it, though both survivors' janitors sweep the directory (the one whose
    HDEL removes the entry announces), over many sweeps and past the heartbeat TTL. Sweeps
    that overlap exactly, which here happen only by chance, are forced in
    tests/integration/test_directory.py."""
    interval, ttl = 0.2, 1.0
    cluster = start_cluster(
        workers=3, CLUSTER_JANITOR_INTERVAL=str(interval), CLUSTER_WORKER_TTL=str(ttl)
    )
    clients = await spread_clients(cluster.url, "once", 12)
    try:
        victim = clients[0].procid
        watchers = [c for c in clients if c.procid != victim]
        os.kill(pid_of(cluster, victim), signal.SIGKILL)
        for client in watchers:
            await client.wait_for("worker-down", lambda p: p == {"procid": victim}, within=10)
        # Each survivor sweeps every interval and a dead worker must look dead on two sweeps
        # in a row: a second announcement would come within a few intervals of the first,
        # or once the victim's heartbeat expires (ttl). The window covers both many times.
        await asyncio.sleep(ttl + 10 * interval)
        for client in watchers:
            # a survivor stalled past the TTL by this busy machine may be announced too
            about_victim = [p for p in client.payloads("worker-down") if p == {"procid": victim}]
            assert len(about_victim) == 1, client.payloads("worker-down")
    finally:
        await close_all(clients)


# Each replacement below is killed within a poll of its start: far inside 4 s on a busy machine.
STABLE_RUN_SECONDS = 4.0


def test_a_worker_that_keeps_dying_is_restarted_with_backoff(
    start_cluster: Callable[..., Cluster],
) -> None:
    """A worker that had run for longer than the stable run (RUNCLUSTER_STABLE_RUN_S) is
    restarted at once; one that keeps dying within it comes back after 0.1, 0.2, 0.4, 0.8,
    1.6 s, never sooner (rooms.runner.supervisor.restart_delay), so a crash loop does not spin;
    the cluster serves again once the worker is left alone, and /metrics counts the restarts."""
    cluster = start_cluster(workers=1, RUNCLUSTER_STABLE_RUN_S=str(STABLE_RUN_SECONDS))
    [first] = cluster.children()
    time.sleep(STABLE_RUN_SECONDS + 0.5)  # the worker started before start_cluster returned
    os.kill(first, signal.SIGKILL)
    victim = wait_until(lambda: [p for p in cluster.children() if p != first], 10, "a restart")[0]
    gaps = []
    for _ in range(5):  # each replacement killed as soon as it exists
        os.kill(victim, signal.SIGKILL)
        killed = time.monotonic()
        victim = wait_until(
            lambda old=victim: [p for p in cluster.children() if p != old], 15, "a restart",
            interval=0.01,
        )[0]  # fmt: skip
        gaps.append(time.monotonic() - killed)
    delays = [0.1, 0.2, 0.4, 0.8, 1.6]
    assert all(gap >= delay for gap, delay in zip(gaps, delays, strict=True)), gaps
    announced = re.findall(r"worker w0 exited with -9; restarting in ([\d.]+) s", cluster.logs())
    assert announced == ["0.0", *map(str, delays)]
    cluster.wait_for_workers(1)
    assert roster(cluster, "after-the-loop")[0] == 200
    [restarts] = scrape(cluster)["identity_playground_worker_restarts"].samples
    assert (restarts.labels["slot"], restarts.value) == ("0", 6.0)  # what GET /metrics shows
