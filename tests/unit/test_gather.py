"""Whom a cluster query waits for: the PUBLISH count checked against the last scan; and
replies that complete a query without waiting in the node's inbox."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from rooms.bus.directory import WorkerInfo
from rooms.bus.local import LocalBus
from rooms.cluster.node import WorkerNode
from rooms.cluster.registry import LocalSocket


def info(procid: str) -> WorkerInfo:
    return WorkerInfo(procid=procid, channel=f"ch.{procid}", pid=1, host="h", started=0.0)


class Directory:
    """Counts scans; `alive` is what the next scan finds."""

    def __init__(self, alive: list[str]) -> None:
        self.alive = alive
        self.scans = 0

    async def scan(self) -> tuple[list[WorkerInfo], list[WorkerInfo]]:
        self.scans += 1
        return [info(p) for p in self.alive], []


class Publisher:
    """Redis as seen by the asker: `subscribed` workers get the query, `answering` reply."""

    def __init__(self, subscribed: list[str], answering: list[str]) -> None:
        self.subscribed = subscribed
        self.answering = answering
        self.node: WorkerNode | None = None

    async def group_send(self, group: str, message: dict[str, Any]) -> int:
        assert self.node is not None
        for procid in self.answering:
            reply = {
                "type": "cluster.reply",
                "request": message["request"],
                "procid": procid,
                "payload": [["s", procid]],
            }
            # as the subscriber hands it over; nothing reads the node's inbox in these tests
            asyncio.get_running_loop().call_soon(self.node._on_message, reply)
        return len(self.subscribed)

    async def send(self, channel: str, message: dict[str, Any]) -> int:
        return 1

    def send_soon(self, channel: str, message: dict[str, Any]) -> bool:
        return False


# A deadline far above this machine's scheduling noise, for the tests of what is NOT waited
# for: they answer within a fraction of it (NOT_WAITED), or they would take all of it.
DEADLINE = 2.0
NOT_WAITED = DEADLINE / 4


def make_node(
    directory: Directory,
    publisher: Publisher,
    gather_deadline: float = DEADLINE,
    gather_recheck: float = DEADLINE / 2,  # no stall of a busy machine reaches it by chance
) -> WorkerNode:
    node = WorkerNode(
        directory=directory,
        publisher=publisher,
        subscriber=LocalBus(),
        encode_event=lambda name, *args: f"{name}{args}",
        procid="me",
        gather_deadline=gather_deadline,
        gather_recheck=gather_recheck,
    )
    publisher.node = node
    return node


async def test_a_count_that_matches_the_last_scan_needs_no_directory_read() -> None:
    directory = Directory(["me", "a", "b"])
    node = make_node(directory, Publisher(["me", "a", "b"], ["a", "b"]))
    first = await node.roster("r")
    second = await node.roster("r")
    assert directory.scans == 1  # only the first query, before any scan was remembered
    assert sorted(e[2] for e in second.entries) == sorted(e[2] for e in first.entries)
    assert (second.expected, second.responded) == (3, 3)


async def test_a_worker_gone_since_the_last_scan_makes_it_read_again() -> None:
    directory = Directory(["me", "a", "b"])
    publisher = Publisher(["me", "a", "b"], ["a", "b"])
    node = make_node(directory, publisher)
    await node.roster("r")
    directory.alive = publisher.subscribed = ["me", "a"]
    publisher.answering = ["a"]
    started = asyncio.get_running_loop().time()
    roster = await node.roster("r")
    assert directory.scans == 2
    assert (roster.expected, roster.responded) == (2, 2)
    assert asyncio.get_running_loop().time() - started < NOT_WAITED  # not waiting for b


async def test_a_subscribed_worker_the_directory_calls_dead_is_not_waited_for() -> None:
    """A cut-off host: Redis still counts its subscription, its heartbeat expired."""
    directory = Directory(["me", "a"])
    node = make_node(directory, Publisher(["me", "a", "cut-off"], ["a"]))
    for _ in range(3):
        roster = await node.roster("r")
        assert (roster.expected, roster.responded) == (2, 2)
    assert directory.scans == 3  # the mismatch never lets the fast path run


async def test_a_new_worker_makes_it_read_again_and_wait_for_the_newcomer() -> None:
    directory = Directory(["me", "a"])
    publisher = Publisher(["me", "a"], ["a"])
    node = make_node(directory, publisher)
    await node.roster("r")
    directory.alive = publisher.subscribed = ["me", "a", "new"]
    publisher.answering = ["a", "new"]
    roster = await node.roster("r")
    assert directory.scans == 2
    assert {e[2] for e in roster.entries} == {"a", "new"}  # "me" holds no sockets
    assert (roster.expected, roster.responded) == (3, 3)


@pytest.mark.parametrize("connected", [True, False], ids=["written at once", "awaited"])
async def test_a_query_is_answered_while_room_events_are_still_being_delivered(
    connected: bool,
) -> None:
    """Written at once where the publisher can (`send_soon`), else by a task of its own."""
    publisher = Publisher(["me"], [])
    node = make_node(Directory(["me"]), publisher)
    sent: list[tuple[str, dict[str, Any]]] = []

    async def record(channel: str, message: dict[str, Any]) -> int:
        sent.append((channel, message))
        return 1

    def record_soon(channel: str, message: dict[str, Any]) -> bool:
        if connected:
            sent.append((channel, message))
        return connected

    publisher.send = record  # type: ignore[method-assign]
    publisher.send_soon = record_soon  # type: ignore[method-assign]
    stuck = asyncio.Event()

    async def never_done(frame: str) -> None:
        await stuck.wait()

    node.add(LocalSocket("slow", "1", deliver=never_done))
    node.registry.join("slow", "r")
    listening = asyncio.create_task(node._listen())
    try:
        event = {"room": "r", "frame": "42", "except": None}
        node._on_message({"type": "room.emit", **event})
        query = {"kind": "roster_json", "args": {"room": "r"}, "request": "q1"}
        node._on_message({"type": "cluster.query", "reply_to": "asker", "origin": "a", **query})
        for _ in range(10):
            await asyncio.sleep(0)
        assert [(channel, m["request"]) for channel, m in sent] == [("asker", "q1")]
        assert not stuck.is_set()  # the room event is still on its way
    finally:
        listening.cancel()


async def test_a_worker_that_declines_is_not_waited_for_and_the_answer_says_partial() -> None:
    """A rolling deploy: "old" does not know the kind asked and says so at once."""
    publisher = Publisher(["me", "a", "old"], ["a"])
    node = make_node(Directory(["me", "a", "old"]), publisher)
    refusal = {"type": "cluster.reply", "procid": "old", "declined": "ValueError('unknown')"}
    sending = publisher.group_send

    async def group_send(group: str, message: dict[str, Any]) -> int:
        loop = asyncio.get_running_loop()
        loop.call_soon(node._on_message, {**refusal, "request": message["request"]})
        return await sending(group, message)

    publisher.group_send = group_send  # type: ignore[method-assign]
    started = asyncio.get_running_loop().time()
    roster = await node.roster("r")
    assert asyncio.get_running_loop().time() - started < NOT_WAITED
    assert (roster.expected, roster.responded) == (3, 2)
    assert {e[2] for e in roster.entries} == {"a"}


def test_a_query_of_an_unknown_kind_is_declined_without_a_payload() -> None:
    node = make_node(Directory(["me"]), Publisher(["me"], []))
    query = {"kind": "roster_v9", "args": {}, "request": "q", "reply_to": "c", "origin": "x"}
    reply = node._reply_to(query)
    assert "payload" not in reply and "roster_v9" in reply["declined"]


async def test_a_worker_replaced_since_the_last_scan_keeps_the_count_but_is_not_waited_for() -> (
    None
):
    """A worker dies and the supervisor's replacement subscribes before the next scan: the
    count still matches, but the newcomer's reply shows the guess is stale."""
    directory = Directory(["me", "a", "dead"])
    publisher = Publisher(["me", "a", "dead"], ["a", "dead"])
    node = make_node(directory, publisher)
    await node.roster("r")
    directory.alive = publisher.subscribed = ["me", "a", "new"]
    publisher.answering = ["a", "new"]
    started = asyncio.get_running_loop().time()
    roster = await node.roster("r")
    assert asyncio.get_running_loop().time() - started < NOT_WAITED
    assert directory.scans == 2
    assert {e[2] for e in roster.entries} == {"a", "new"}
    assert (roster.expected, roster.responded) == (3, 3)


async def test_a_killed_worker_redis_still_counts_is_waited_for_only_until_the_recheck() -> None:
    """SIGKILL: the dead process's subscription is counted until Redis reads its closed
    connection, which on a busy machine can come after the query; the count matches the
    last scan, so the dead worker is expected, until the recheck reads the directory."""
    directory = Directory(["me", "a", "b"])
    publisher = Publisher(["me", "a", "b"], ["a", "b"])
    node = make_node(directory, publisher, gather_recheck=0.05)
    await node.roster("r")
    publisher.answering = ["a"]  # b is dead; Redis has not noticed yet
    directory.alive = ["me", "a"]  # by the recheck it has
    started = asyncio.get_running_loop().time()
    roster = await node.roster("r")
    assert asyncio.get_running_loop().time() - started < NOT_WAITED
    assert directory.scans == 2
    assert (roster.expected, roster.responded) == (2, 2)


async def test_a_hung_worker_is_still_waited_for_after_the_recheck() -> None:
    """SIGSTOP: the directory still finds it alive, so the answer waits the deadline."""
    directory = Directory(["me", "a", "b"])
    publisher = Publisher(["me", "a", "b"], ["a", "b"])
    node = make_node(directory, publisher, gather_deadline=0.3, gather_recheck=0.05)
    await node.roster("r")
    publisher.answering = ["a"]
    started = asyncio.get_running_loop().time()
    roster = await node.roster("r")
    assert asyncio.get_running_loop().time() - started >= 0.29
    assert directory.scans == 2
    assert (roster.expected, roster.responded) == (3, 2)
