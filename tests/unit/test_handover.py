"""A socket handed from one worker to another at an upgrade: each room's stream of events is
cut for it by a mark (rooms.cluster.node.move_out, move_in), so the old worker delivers what
comes before each room's mark, the new one what comes after, and no event twice."""

from __future__ import annotations

import asyncio
from typing import Any

from rooms.bus.local import LocalBus
from rooms.cluster import events
from rooms.cluster.membership import LocalDirectory
from rooms.cluster.node import WorkerNode
from rooms.cluster.registry import LocalSocket
from rooms.socketio.polling import SESSIONS, PollingTransport, Reply


class Recorder(LocalBus):
    """A bus that keeps what is published to groups instead of delivering it."""

    def __init__(self) -> None:
        super().__init__()
        self.published: list[tuple[str, dict[str, Any]]] = []

    async def group_send(self, group: str, message: dict[str, Any]) -> int:
        self.published.append((group, message))
        return 1


def make_node(procid: str) -> tuple[WorkerNode, Recorder]:
    bus = Recorder()
    node = WorkerNode(
        publisher=bus,
        subscriber=bus,
        directory=LocalDirectory(),
        encode_event=lambda *args: str(args),
        procid=procid,
    )
    return node, bus


def emit(room: str, event: str) -> dict[str, Any]:
    return events.room_emit(room, event, event=event)  # one event, sent to both rooms


async def feed(node: WorkerNode, *messages: dict[str, Any]) -> None:
    """Messages as the node's inbox takes them, in order."""
    for message in messages:
        await node._handlers[message["type"]](message)


async def test_each_room_is_cut_at_its_mark_and_no_event_arrives_twice() -> None:
    old, _ = make_node("old")
    new, bus = make_node("new")
    on_old: list[str] = []

    async def old_deliver(frame: Any) -> None:
        on_old.append(frame)

    old.add(LocalSocket("s", "1", deliver=old_deliver))
    old.registry.join("s", "r1")
    old.registry.join("s", "r2")
    moved_out: list[bool] = []
    old.move_out("s", "new", lambda: moved_out.append(True))

    on_new: list[tuple[Any, str | None]] = []

    async def new_event(frame: Any, event: str | None) -> None:
        on_new.append((frame, event))

    async def never(frame: Any) -> None:
        raise AssertionError(frame)

    moved_in: list[bool] = []
    sock = LocalSocket("s", "1", deliver=never, deliver_event=new_event)
    await new.move_in(sock, ["r1", "r2"], lambda: moved_in.append(True))
    marks = {message["room"]: message for _group, message in bus.published}
    assert set(marks) == {"r1", "r2"} and new.registry.get("s") is not None
    assert sock.rooms == set()  # in a room from its mark on only
    assert new.departures.keep("r1") and new.departures.keep("r2")  # subscribed meanwhile

    # e2 straddles the cuts: after the mark in r1, before it in r2
    r1 = [emit("r1", "e1"), marks["r1"], emit("r1", "e2"), emit("r1", "e3")]
    r2 = [emit("r2", "e1"), emit("r2", "e2"), marks["r2"], emit("r2", "e3")]
    for node in (old, new):  # every member of a group sees its messages in one order
        await feed(node, *r1, *r2)

    assert on_old == ["e1", "e2"] and moved_out == [True]
    assert old.registry.get("s") is not None  # still registered until its queue is shipped
    served = old.fanout.served_to("s")
    assert served == ["e1", "e2"]
    old.forget_moved("s")
    assert old.registry.get("s") is None and not old.registry.has_room("r1")
    assert old.departures.queued == 0  # no socket-disconnected for a move

    assert on_new == [("e2", "e2"), ("e3", "e3")] and moved_in == [True]
    assert sock.rooms == {"r1", "r2"} and not new.departures.keep("r1")
    # what the new worker holds back is filtered by what the old one delivered
    # (SocketIOSocket.arrived_frames), and a later copy of those is not delivered again
    assert [frame for frame, event in on_new if event not in served] == ["e3"]
    new.fanout.mark_served("s", served)
    sock.deliver_event = None
    late: list[Any] = []

    async def new_deliver(frame: Any) -> None:
        late.append(frame)

    sock.deliver = new_deliver
    await feed(new, emit("r1", "e2"), emit("r1", "e4"))
    assert late == ["e4"]


async def test_a_socket_in_no_room_moves_at_once() -> None:
    old, _ = make_node("old")
    new, bus = make_node("new")

    async def deliver(frame: Any) -> None:
        pass

    old.add(LocalSocket("s", "1", deliver=deliver))
    moved: list[str] = []
    old.move_out("s", "new", lambda: moved.append("old"))
    await new.move_in(LocalSocket("s", "1", deliver=deliver), [], lambda: moved.append("new"))
    assert bus.published == [] and moved == ["new"]
    await asyncio.sleep(0)  # the old worker's `done` comes soon after, not within move_out
    assert sorted(moved) == ["new", "old"]


async def test_a_socket_closed_while_moving_in_leaves_no_room_kept() -> None:
    new, _ = make_node("new")

    async def deliver(frame: Any) -> None:
        pass

    await new.move_in(LocalSocket("s", "1", deliver=deliver), ["r1"], lambda: None)
    assert new.departures.keep("r1")
    new.remove("s")
    assert not new.departures.keep("r1") and not new.moving_in


async def test_an_emit_from_django_after_the_mark_reaches_the_socket_moving_in() -> None:
    """A Channels group_send to a room arriving before the inbox took the room's mark is
    kept for the inbox, which hands it to the socket once the mark put it in the room."""
    new, bus = make_node("new")
    got: list[tuple[Any, str | None]] = []

    async def new_event(frame: Any, event: str | None) -> None:
        got.append((frame, event))

    async def never(frame: Any) -> None:
        raise AssertionError(frame)

    sock = LocalSocket("s", "1", deliver=never, deliver_event=new_event)
    await new.move_in(sock, ["r1"], lambda: None)
    group, mark = bus.published[0]
    new._on_group_message(group, mark)
    new._on_group_message(group, events.socketio_emit("notice", "hello"))
    while not new._inbox.empty():
        await feed(new, new._inbox.get_nowait())
    assert got == [(str(("notice", "hello")), None)]


async def test_a_failed_move_in_tells_the_rooms_its_old_worker_gave_up() -> None:
    """A socket whose handover failed is announced gone in the rooms named, not in those
    it happened to be in here (its old worker tells the others)."""
    new, bus = make_node("new")

    async def deliver(frame: Any) -> None:
        pass

    await new.move_in(LocalSocket("s", "1", deliver=deliver), ["r1", "r2"], lambda: None)
    await feed(new, bus.published[0][1])  # r1's mark came through here
    assert new.remove("s", announce=["r2"]) == ["r1"]
    assert new.departures.queued == 1  # one room told: r2


class Recording(PollingTransport[str]):
    """A long-polling session whose layer above records the messages it takes."""

    def decode_message(self, text_data: str | None, bytes_data: bytes | None) -> str:
        return text_data or ""

    async def handle(self, message: str) -> None:
        self.handled.append(message)


async def test_what_a_post_carries_while_its_session_moves_is_taken_by_the_taker() -> None:
    """A CONNECT or a join POSTed while the session moves to another worker is answered
    ok and kept, not refused (socket.io-client sends its CONNECT while its upgrade's probe
    runs); the worker taking the session takes it, in order, before letting later requests
    in."""
    moving = Recording({"type": "http"}, {}, "moving-sid")
    moving.handled = []
    assert (await moving.start()).status == 200
    moving.hand_over("w9-1-abcd")
    assert await moving.post('40{"room":"r"}\x1e420["join","r"]') == Reply(200, "ok")
    assert moving.handled == []
    assert moving.deferred == ['40{"room":"r"}', '420["join","r"]']

    taker = Recording({"type": "http"}, {}, "taken-sid")
    taker.handled = []
    await taker.start()
    SESSIONS.pop("taken-sid")  # as rebuilt by a handover: not yet serving requests
    await taker.land(moving.deferred)
    assert taker.handled == moving.deferred
    assert SESSIONS["taken-sid"] is taker
    for transport in (moving, taker):
        await transport.close_session()
