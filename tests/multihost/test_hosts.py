"""Workers on several machines meeting through one Redis, and the machines they can lose.

Three hosts on this machine (network namespaces on a bridge, see netns.py): Redis on host
A, `runcluster --workers 2` on hosts B and C. The test process talks to B and C over the
bridge with python-socketio clients and HTTP, as clients on other machines would.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import quote

import pytest

from rooms.bus.names import BusNames, shard_index
from rooms.cluster.names import room_group
from tests.integration.recording import Client, close_all, connect_many
from tests.integration.servers import http, wait_until
from tests.multihost.netns import GATHER_DEADLINE, WORKER_TTL, HostCluster, Hosts

pytestmark = pytest.mark.integration

# What a roster may take beyond the gather deadline on this busy machine (HTTP, scheduling);
# a roster waiting on a partitioned host past the deadline would wait its TCP timeouts.
ROSTER_SLACK = 1.5


def roster(cluster: HostCluster, room: str) -> tuple[int, dict[str, str], Any]:
    return http(f"{cluster.url}/{quote(room, safe='')}/users", timeout=5)


async def timed_roster(cluster: HostCluster, room: str) -> tuple[float, int, dict[str, str], Any]:
    started = time.monotonic()
    status, headers, body = await asyncio.to_thread(roster, cluster, room)
    return time.monotonic() - started, status, headers, body


def pairs(body: Iterable[dict[str, Any]]) -> set[tuple[str, str]]:
    return {(e["id_socket"], e["id_user"]) for e in body}


def expected_pairs(clients: Iterable[tuple[Client, str]]) -> set[tuple[str, str]]:
    return {(client.sid, id_user) for client, id_user in clients}


async def wait_async(predicate: Callable[[], Any], within: float, what: str) -> Any:
    return await asyncio.to_thread(wait_until, predicate, within, what, 0.1)


async def close_within(clients: Iterable[Client], within: float = 5) -> None:
    """Close clients, not hanging on one whose server is unreachable."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(close_all(list(clients)), within)


async def connect_on_both(
    hosts: Hosts, room: str, b_users: list[str], c_users: list[str]
) -> tuple[list[tuple[Client, str]], list[tuple[Client, str]]]:
    on_b = await connect_many(hosts.b.url, [(u, room) for u in b_users])
    on_c = await connect_many(hosts.c.url, [(u, room) for u in c_users])
    return list(zip(on_b, b_users, strict=True)), list(zip(on_c, c_users, strict=True))


# ---- one cluster across hosts --------------------------------------------------------


async def test_one_roster_across_hosts(hosts: Hosts) -> None:
    """Sockets on host B and host C in one room: the same exact roster from either host,
    with procids of both hosts."""
    on_b, on_c = await connect_on_both(hosts, "across", ["1", "2", "3"], ["4", "5", "6"])
    by_host = hosts.workers_by_host()
    try:
        assert {c.procid for c, _ in on_b} <= by_host["host-b"]
        assert {c.procid for c, _ in on_c} <= by_host["host-c"]
        for cluster in (hosts.b, hosts.c):
            status, headers, body = await asyncio.to_thread(roster, cluster, "across")
            assert status == 200, body
            assert len(body) == 6
            assert pairs(body) == expected_pairs(on_b + on_c)
            assert {e["procid"] for e in body} == {c.procid for c, _ in on_b + on_c}
            assert headers["X-Workers-Expected"] == headers["X-Workers-Responded"] == "4"
    finally:
        await close_within(c for c, _ in on_b + on_c)


async def test_events_cross_hosts(hosts: Hosts) -> None:
    """socket-connected, identity-change, a server-side rename and socket-disconnected
    travel from host B to host C and back."""
    room = "events"
    b1 = await Client().connect(hosts.b.url, "1", room)
    c1 = await Client().connect(hosts.c.url, "2", room)
    b2 = c2 = None
    try:
        assert await b1.wait_for("socket-connected", lambda s: s == c1.sid) == c1.sid
        b2 = await Client().connect(hosts.b.url, "3", room)
        assert await c1.wait_for("socket-connected", lambda s: s == b2.sid) == b2.sid
        c2 = await Client().connect(hosts.c.url, "4", room)
        assert await b1.wait_for("socket-connected", lambda s: s == c2.sid) == c2.sid

        await b1.sio.emit("identity-change", {"name": "Bee", "id_user": "9"})
        for peer in (c1, c2):
            got = await peer.wait_for("identity-change", lambda p: p.get("name") == "Bee")
            assert got == {"name": "Bee", "id_user": "1"}
        await c1.sio.emit("identity-change", {"name": "Sea"})
        for peer in (b1, b2):
            got = await peer.wait_for("identity-change", lambda p: p.get("name") == "Sea")
            assert got == {"name": "Sea", "id_user": "2"}

        # renames through the API of one host reach the room on both hosts
        for cluster, id_user, name in ((hosts.b, "2", "Mary on B"), (hosts.c, "1", "John on C")):
            status, _, body = await asyncio.to_thread(
                http, f"{cluster.url}/users/{id_user}", "PUT", {"name": name}
            )
            assert status == 204, body
            renamed = {"id_user": id_user}
            for client in (b1, b2, c1, c2):
                got = await client.wait_for("identity-change", lambda p, r=renamed: p == r)
                assert got == renamed
        assert (await asyncio.to_thread(http, f"{hosts.b.url}/users/1"))[2]["name"] == "John on C"
        assert (await asyncio.to_thread(http, f"{hosts.c.url}/users/2"))[2]["name"] == "Mary on B"

        for leaving, watcher in ((c2, b1), (b2, c1)):
            sid = leaving.sid
            await leaving.close()
            assert await watcher.wait_for("socket-disconnected", lambda s, x=sid: s == x) == sid
    finally:
        for id_user, name in (("1", "John"), ("2", "Mary")):
            await asyncio.to_thread(http, f"{hosts.b.url}/users/{id_user}", "PUT", {"name": name})
        await close_within(c for c in (b1, b2, c1, c2) if c is not None)


async def test_workers_lists_every_host(hosts: Hosts) -> None:
    """/workers on either host lists the 4 workers, each with its host's name and pid."""
    listings = []
    for cluster in (hosts.b, hosts.c):
        workers = await asyncio.to_thread(cluster.live_workers)
        procids = [w["procid"] for w in workers]
        assert len(procids) == len(set(procids)) == 4
        assert sorted(w["host"] for w in workers) == ["host-b", "host-b", "host-c", "host-c"]
        for host_cluster, name in ((hosts.b, "host-b"), (hosts.c, "host-c")):
            pids = {w["pid"] for w in workers if w["host"] == name}
            assert pids == set(host_cluster.children())
        listings.append(sorted(procids))
    assert listings[0] == listings[1]


# ---- losing a host: each test has hosts of its own -----------------------------------


async def test_partitioned_host_is_dropped_then_rejoins(make_hosts: Callable[..., Hosts]) -> None:
    """Host C's cable unplugged (its connections stay open, so Redis still counts its
    subscriptions): within TTL + 3 s host B drops C's workers (fast rosters of B's sockets,
    /workers, worker-down); plugged back, C's workers rejoin by themselves."""
    hosts = make_hosts()
    room = "partition"
    on_b, on_c = await connect_on_both(hosts, room, ["1", "2"], ["3", "4"])
    b_clients = [c for c, _ in on_b]
    by_host = hosts.workers_by_host()
    c_procids = by_host["host-c"]
    all_procids = by_host["host-b"] | c_procids
    directory = await asyncio.to_thread(hosts.directory)
    c_channels = [info["channel"] for procid, info in directory.items() if procid in c_procids]
    new_client = None
    hosts.c_host.set_link(up=False)
    cut = time.monotonic()
    try:
        # Rosters on B: each within the gather deadline, and from TTL + 3 s on at the
        # latest only B's sockets, no longer waiting for C.
        settled = None
        slow = []
        while settled is None and time.monotonic() - cut < WORKER_TTL + 3:
            elapsed, status, headers, body = await timed_roster(hosts.b, room)
            if elapsed >= GATHER_DEADLINE + ROSTER_SLACK:
                slow.append(round(elapsed, 2))
            if (
                status == 200
                and pairs(body) == expected_pairs(on_b)
                and headers["X-Workers-Expected"] == headers["X-Workers-Responded"] == "2"
            ):
                settled = elapsed
            else:
                await asyncio.sleep(0.1)
        assert slow == [], f"rosters on B slower than the gather deadline: {slow}"
        assert settled is not None, (
            f"{WORKER_TTL + 3:.0f} s after the partition B still expects C's workers: "
            f"{status} {headers.get('X-Workers-Expected')}/{headers.get('X-Workers-Responded')}"
            f" {body}"
        )
        dropped_after = time.monotonic() - cut
        elapsed, status, headers, body = await timed_roster(hosts.b, room)
        assert elapsed < GATHER_DEADLINE + ROSTER_SLACK
        assert pairs(body) == expected_pairs(on_b)
        # C's connections are still open: Redis alone would still count C's workers alive
        counts = await asyncio.to_thread(hosts.redis[0].command, "PUBSUB", "NUMSUB", *c_channels)
        assert all(n >= 1 for n in counts[1::2]), counts

        remaining = max(0.5, WORKER_TTL + 3 - (time.monotonic() - cut))
        await wait_async(
            lambda: (
                {w["host"] for w in hosts.b.live_workers()} == {"host-b"}
                and len(hosts.b.live_workers()) == 2
            ),
            remaining,
            "C's workers to leave /workers on B",
        )
        remaining = max(0.5, WORKER_TTL + 3 - (time.monotonic() - cut))
        for client in b_clients:
            for procid in c_procids:
                await client.wait_for("worker-down", lambda p, x=procid: p == {"procid": x},
                                      within=remaining)  # fmt: skip
        down_after = time.monotonic() - cut
    finally:
        b_clients[0].events.clear()  # from here on, only what the heal brings
        hosts.c_host.set_link(up=True)
    healed = time.monotonic()

    try:

        def rejoined() -> bool:
            workers = hosts.b.live_workers()
            procids = [w["procid"] for w in workers]
            return len(procids) == 4 and set(procids) == all_procids

        await wait_async(rejoined, 15, "C's workers back in /workers on B")
        print(
            f"partition: B dropped C after {dropped_after:.1f} s, worker-down after "
            f"{down_after:.1f} s; C back {time.monotonic() - healed:.1f} s after the link"
        )
        procids = [w["procid"] for w in hosts.b.live_workers()]
        assert len(procids) == len(set(procids)) == 4
        new_client = await Client().connect(hosts.c.url, "5", room)
        assert new_client.procid in c_procids

        def listed() -> Any:
            status, headers, body = roster(hosts.b, room)
            sids = {e["id_socket"] for e in body} if status == 200 else set()
            return new_client.sid in sids and (headers, body)

        headers, body = await wait_async(listed, 5, "the new client on C in B's roster")
        # C's old sockets never closed (the partition was far shorter than the ping
        # timeout), so they are back too.
        assert pairs(body) == expected_pairs([*on_b, *on_c, (new_client, "5")])
        assert headers["X-Workers-Expected"] == headers["X-Workers-Responded"] == "4"
        # B's pages dropped C's rows on worker-down: each returning socket is announced
        for client, _ in on_c:
            await b_clients[0].wait_for("socket-connected", lambda sid, c=client: sid == c.sid)

        # events flow both ways again, to old and new sockets on C
        await b_clients[0].sio.emit("identity-change", {"name": "healed"})
        for client in [*(c for c, _ in on_c), new_client]:
            got = await client.wait_for("identity-change", lambda p: p.get("name") == "healed")
            assert got == {"name": "healed", "id_user": "1"}
        await new_client.sio.emit("identity-change", {"name": "from C"})
        got = await b_clients[0].wait_for("identity-change", lambda p: p.get("name") == "from C")
        assert got == {"name": "from C", "id_user": "5"}
    finally:
        extra = [new_client] if new_client is not None else []
        await close_within([*b_clients, *(c for c, _ in on_c), *extra])


async def test_killed_host_is_not_waited_for(make_hosts: Callable[..., Hosts]) -> None:
    """Every process of host C SIGKILLed: B's rosters answer at once with B's sockets only,
    /workers on B lists B's 2, and B's clients get worker-down for both of C's workers."""
    # A gather deadline far above this machine's noise: a roster that waited for C's
    # workers would take all of it, one that did not a fraction (WORKER_TTL is shorter, but
    # the roster is asked as soon as Redis has dropped C's subscriptions, well within it).
    deadline = 5.0
    hosts = make_hosts(CLUSTER_GATHER_DEADLINE=str(deadline))
    room = "killed"
    on_b, on_c = await connect_on_both(hosts, room, ["1", "2"], ["3", "4"])
    c_procids = hosts.workers_by_host()["host-c"]
    channels = [hosts.directory()[procid]["channel"] for procid in c_procids]

    def c_unsubscribed() -> bool:
        counts = hosts.redis[0].command("PUBSUB", "NUMSUB", *channels)
        return all(int(n) == 0 for n in counts[1::2])

    try:
        await asyncio.to_thread(hosts.c.kill)
        killed = time.monotonic()
        # Redis drops a dead process's subscriptions once it reads the closed connection
        await wait_async(c_unsubscribed, WORKER_TTL, "Redis to drop C's subscriptions")
        elapsed, status, headers, body = await timed_roster(hosts.b, room)
        assert status == 200, body
        assert elapsed < deadline / 3, f"the roster waited {elapsed:.2f} s for host C"
        assert pairs(body) == expected_pairs(on_b)
        assert headers["X-Workers-Expected"] == headers["X-Workers-Responded"] == "2"
        workers = await asyncio.to_thread(hosts.b.live_workers)
        assert sorted(w["host"] for w in workers) == ["host-b", "host-b"]
        for client, _ in on_b:
            for procid in c_procids:
                await client.wait_for("worker-down", lambda p, x=procid: p == {"procid": x},
                                      within=5)  # fmt: skip
        print(f"killed: roster on B in {elapsed * 1000:.0f} ms, worker-down within "
              f"{time.monotonic() - killed:.1f} s")  # fmt: skip
    finally:
        await close_within(c for c, _ in on_b + on_c)


# ---- a bus sharded over two Redis servers ----------------------------------


def shard_channel(prefix: str, room: str) -> str:
    """The Redis channel of a room's group on the bus (rooms.bus.names)."""
    return BusNames(prefix).group(room_group(room))


def rooms_on_each_shard(prefix: str, per_shard: int) -> list[str]:
    """Room names whose groups land `per_shard` on each of two Redis servers. Fixed names
    could all hash to one server for some prefix (CRC32 of names that differ in one
    character is far from independent), and then the first server serves no room at all."""
    picked: dict[int, list[str]] = {0: [], 1: []}
    for i in range(200):
        room = f"shard-{i}"
        shard = picked[shard_index(shard_channel(prefix, room), 2)]
        if len(shard) < per_shard:
            shard.append(room)
    assert all(len(rooms) == per_shard for rooms in picked.values())
    return picked[0] + picked[1]


async def test_sharded_channel_layer_across_hosts(make_hosts: Callable[..., Hosts]) -> None:
    """REDIS_URL lists two Redis servers: the layer spreads over both, the worker
    directory lives on the first, and rosters, identity-change and worker-down still
    cross hosts."""
    hosts = make_hosts(redis_ports=(6379, 6380))
    rooms = rooms_on_each_shard(hosts.prefix, per_shard=3)
    on_b = await connect_many(hosts.b.url, [(str(i + 1), room) for i, room in enumerate(rooms)])
    on_c = await connect_many(hosts.c.url, [(str(i + 5), room) for i, room in enumerate(rooms)])
    c_procids = hosts.workers_by_host()["host-c"]
    try:
        first, second = hosts.redis
        assert len(await asyncio.to_thread(first.command, "HKEYS", f"{hosts.prefix}:workers")) == 4
        assert await asyncio.to_thread(second.command, "EXISTS", f"{hosts.prefix}:workers") == 0
        for room in rooms:
            group_channel = shard_channel(hosts.prefix, room)
            server = hosts.redis[shard_index(group_channel, 2)]
            subscribed = await asyncio.to_thread(server.command, "PUBSUB", "NUMSUB", group_channel)
            assert subscribed[1] == 2, f"{room} not subscribed by both hosts on {server.url}"

        for i, room in enumerate(rooms):
            status, headers, body = await asyncio.to_thread(roster, hosts.b, room)
            assert status == 200, body
            assert pairs(body) == {(on_b[i].sid, str(i + 1)), (on_c[i].sid, str(i + 5))}
            assert headers["X-Workers-Expected"] == headers["X-Workers-Responded"] == "4"

        for i in range(len(rooms)):
            await on_b[i].sio.emit("identity-change", {"name": f"b{i}"})
            await on_c[i].sio.emit("identity-change", {"name": f"c{i}"})
        for i in range(len(rooms)):
            from_b = {"name": f"b{i}", "id_user": str(i + 1)}
            from_c = {"name": f"c{i}", "id_user": str(i + 5)}
            assert await on_c[i].wait_for("identity-change") == from_b
            assert await on_b[i].wait_for("identity-change") == from_c

        await asyncio.to_thread(hosts.c.kill)
        for client in on_b:
            for procid in c_procids:
                await client.wait_for("worker-down", lambda p, x=procid: p == {"procid": x},
                                      within=5)  # fmt: skip
        status, headers, body = await asyncio.to_thread(roster, hosts.b, rooms[0])
        assert pairs(body) == {(on_b[0].sid, "1")}
    finally:
        await close_within([*on_b, *on_c])
