"""A socket's leaving costs its worker nothing it must wait for: the socket is forgotten at
once, and the node's departures task unsubscribes the emptied rooms in bulk and announces
the departure, holding the announcement through a Redis outage until the cluster is back."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from rooms.cluster.departures import Departures
from rooms.cluster.membership import LocalDirectory
from rooms.cluster.names import room_group
from rooms.cluster.node import WorkerNode
from rooms.cluster.registry import LocalSocket, Registry


class FakeBus:
    """A subscriber that records its groups, and a publisher that records or, while
    `down`, refuses what it is given."""

    def __init__(self) -> None:
        self.subscribed: set[str] = set()
        self.discards: list[tuple[str, ...]] = []
        self.published: list[tuple[str, dict[str, Any]]] = []
        self.down = False

    async def group_add(self, group: str) -> None:
        self.subscribed.add(group)

    async def group_discard(self, *groups: str) -> None:
        self.discards.append(groups)
        self.subscribed.difference_update(groups)

    async def group_send(self, group: str, message: dict[str, Any]) -> int:
        self.published.append((group, message))
        return 1

    async def group_send_many(self, messages: Sequence[tuple[str, dict[str, Any]]]) -> list[bool]:
        if self.down:
            return [False] * len(messages)
        self.published.extend(messages)
        return [True] * len(messages)


def node_on(bus: FakeBus) -> WorkerNode:
    return WorkerNode(
        publisher=bus,  # type: ignore[arg-type]
        subscriber=bus,  # type: ignore[arg-type]
        directory=LocalDirectory(),
        encode_event=lambda name, *args: f"{name}:{','.join(args)}",
        procid="me",
    )


async def nothing(frame: str) -> None:
    return None


async def member(node: WorkerNode, id_socket: str, *rooms: str) -> None:
    node.add(LocalSocket(id_socket, "1", deliver=nothing))
    for room in rooms:
        await node.join(id_socket, room)


def departures_on(bus: FakeBus, **options: Any) -> Departures:
    return Departures(registry=Registry(), publisher=bus, subscriber=bus, **options)  # type: ignore[arg-type]


@asynccontextmanager
async def running(departures: Departures) -> AsyncIterator[None]:
    """`departures`' task runs inside the block, and is cancelled on the way out."""
    task = asyncio.create_task(departures.run())
    try:
        yield
    finally:
        task.cancel()


async def settled(departures: Departures) -> None:
    """Until the departures task has nothing left it may do now."""
    for _ in range(100):
        await asyncio.sleep(0)
    assert departures.idle or departures._held


def group(room: str) -> str:
    return room_group(room)


async def test_a_socket_in_100_rooms_is_forgotten_at_once_and_its_rooms_left_in_one_call() -> None:
    bus = FakeBus()
    node = node_on(bus)
    rooms = [f"r{i:03d}" for i in range(100)]
    await member(node, "s1", *rooms)
    async with running(node.departures):
        left = node.remove("s1")
        assert not inspect.isawaitable(left), "removing a socket must not wait on the bus"
        assert left == rooms
        assert (len(node.registry), node.registry.room_count) == (0, 0)
        await settled(node.departures)
        assert len(bus.discards) == 1
        assert sorted(bus.discards[0]) == sorted(group(r) for r in rooms)
        assert bus.subscribed == set()
        frames = {m["frame"] for _, m in bus.published}
        assert frames == {"socket-disconnected:s1"}
        assert sorted(m["room"] for _, m in bus.published) == rooms
        assert len({m["event"] for _, m in bus.published}) == 1  # each member served once


async def test_a_room_joined_again_before_its_unsubscribe_is_sent_stays_subscribed() -> None:
    """s1 leaves rooms a and b (the last here in both); before the departures task runs,
    s2 joins a: b is unsubscribed, a is not."""
    bus = FakeBus()
    node = node_on(bus)
    await member(node, "s1", "a", "b")
    node.remove("s1")
    node.add(LocalSocket("s2", "2", deliver=nothing))
    await node.join("s2", "a")
    async with running(node.departures):
        await settled(node.departures)
        assert bus.discards == [(group("b"),)]
        assert bus.subscribed == {group("a")}


async def test_a_room_left_and_joined_by_sockets_of_this_worker_in_turn_ends_subscribed() -> None:
    """A leave empties the room, a join fills it, a leave empties it, a join fills it,
    all before the task runs: the room stays subscribed."""
    bus = FakeBus()
    node = node_on(bus)
    await member(node, "s1", "a")
    node.leave("s1", "a")
    await node.join("s1", "a")
    node.leave("s1", "a")
    await node.join("s1", "a")
    async with running(node.departures):
        await settled(node.departures)
        assert bus.discards == []
        assert bus.subscribed == {group("a")}


async def test_departures_refused_by_redis_wait_until_every_worker_is_back() -> None:
    """Redis refuses the publish: the departure waits while the directory answers without
    the peer, and goes out once the peer is listed alive again."""
    bus = FakeBus()
    departures = departures_on(bus)
    departures.saw_alive({"me", "peer"})
    async with running(departures):
        bus.down = True
        departures.announce(["a", "b"], "bye")
        await settled(departures)
        assert bus.published == [] and departures.queued == 2
        bus.down = False
        departures.saw_alive({"me"})  # Redis back, the peer not resubscribed yet
        await settled(departures)
        assert bus.published == []
        departures.saw_alive({"me", "peer"})
        await settled(departures)
        assert sorted(m["room"] for _, m in bus.published) == ["a", "b"]
        assert departures.queued == 0


async def test_a_worker_that_never_comes_back_holds_departures_only_for_the_settle_time() -> None:
    """The peer is not listed again: the departure goes out `settle` seconds after the
    directory first answered (as when no worker had been seen before the failure)."""
    bus = FakeBus()
    departures = departures_on(bus, settle=0.2)
    departures.saw_alive({"me", "dead"})
    async with running(departures):
        bus.down = True
        departures.announce(["a"], "bye")
        await settled(departures)
        bus.down = False
        departures.saw_alive({"me"})
        await settled(departures)
        assert bus.published == []
        await asyncio.sleep(0.25)
        departures.saw_alive({"me"})
        await settled(departures)
        assert [m["room"] for _, m in bus.published] == ["a"]


async def test_what_waits_for_redis_is_capped_oldest_dropped_first() -> None:
    bus = FakeBus()
    departures = departures_on(bus, max_queued=10)
    departures.saw_alive({"me"})
    async with running(departures):
        bus.down = True
        for n in range(8):
            departures.announce(["a", "b"], f"bye {n}")
            await settled(departures)
        assert departures.queued <= 10
        bus.down = False
        departures.saw_alive({"me"})
        await settled(departures)
        frames = [m["frame"] for _, m in bus.published]
        assert frames == [f"bye {n}" for n in range(3, 8) for _ in "ab"]


async def test_a_stopping_worker_sends_what_it_holds_before_it_leaves() -> None:
    """`flush` returns once what was queued is handed to the bus (or at its deadline)."""
    bus = FakeBus()
    departures = departures_on(bus)
    async with running(departures):
        departures.rooms_emptied(["a"])
        departures.announce(["a", "b"], "bye")
        await asyncio.wait_for(departures.flush(within=1.0), 2)
        assert bus.discards == [(group("a"),)]
        assert [m["room"] for _, m in bus.published] == ["a", "b"]
