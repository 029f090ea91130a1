"""A room event reaches each of this worker's sockets in it once: written at once where the
socket can take it so, awaited otherwise."""

from __future__ import annotations

from rooms.bus.local import LocalBus
from rooms.bus.serialization import serialize
from rooms.cluster import events
from rooms.cluster.fanout import RoomFanout
from rooms.cluster.membership import LocalDirectory
from rooms.cluster.node import WorkerNode
from rooms.cluster.registry import LocalSocket, Registry


class Sink:
    """One socket's two ways of taking a frame; `direct` says whether the first one works."""

    def __init__(self, direct: bool) -> None:
        self.direct = direct
        self.written: list[str] = []
        self.awaited: list[str] = []

    def deliver_now(self, frame: str) -> bool:
        if self.direct:
            self.written.append(frame)
        return self.direct

    async def deliver(self, frame: str) -> None:
        self.awaited.append(frame)


def socket_with(node: WorkerNode, id_socket: str, sink: Sink, *rooms: str) -> None:
    node.add(LocalSocket(id_socket, "1", deliver=sink.deliver, deliver_now=sink.deliver_now))
    for room in rooms:
        node.registry.join(id_socket, room)


async def test_direct_frames_are_written_and_the_rest_awaited_each_socket_once() -> None:
    bus = LocalBus()
    node = WorkerNode(
        publisher=bus, subscriber=bus, directory=LocalDirectory(), encode_event=str, procid="me"
    )
    direct, asgi, both, sender = Sink(True), Sink(False), Sink(True), Sink(True)
    socket_with(node, "direct", direct, "a")
    socket_with(node, "asgi", asgi, "b")
    socket_with(node, "both", both, "a", "b")
    socket_with(node, "sender", sender, "a")
    for room in ("a", "b"):  # what emit_to_rooms(["a", "b"], ...) publishes, one per room
        message = {"room": room, "frame": "42", "except": "sender", "event": "e1"}
        await node.fanout.deliver({"type": "room.emit", **message})
    assert (direct.written, direct.awaited) == (["42"], [])
    assert (asgi.written, asgi.awaited) == ([], ["42"])
    assert (both.written, both.awaited) == (["42"], [])
    assert (sender.written, sender.awaited) == ([], [])


def test_a_socket_without_a_direct_path_is_always_awaited() -> None:
    plain = LocalSocket("s", "1", deliver=Sink(False).deliver)
    assert plain.deliver_now("42") is False


class Recorder:
    """A publisher that keeps what would go to Redis."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, object]]] = []

    async def group_send(self, group: str, message: dict[str, object]) -> int:
        self.sent.append((group, message))
        return 1


async def run(method: object, *args: object) -> None:
    await method(*args)  # type: ignore[operator]


async def test_an_event_for_many_rooms_costs_one_small_message_per_room() -> None:
    """Linear in the rooms: no copy carries the room list (2000 rooms once cost 400 MB)."""
    recorder = Recorder()
    fanout = RoomFanout(recorder, Registry(), run)  # type: ignore[arg-type]
    rooms = [f"room-{i:04d}-" + "x" * 90 for i in range(2000)]
    await fanout.emit(rooms, '42["identity-change",{"id_user":"1"}]')
    assert len(recorder.sent) == 2000
    sizes = {len(serialize(message)) for _, message in recorder.sent}
    assert max(sizes) < 250  # the frame, one room name, an event id
    assert len({message["event"] for _, message in recorder.sent}) == 1


async def test_an_event_for_one_room_needs_no_event_id() -> None:
    recorder = Recorder()
    await RoomFanout(recorder, Registry(), run).emit(["a", "a"], "42")  # type: ignore[arg-type]
    assert [message.get("event") for _, message in recorder.sent] == [None]


async def test_deliveries_remembered_stay_bounded_oldest_forgotten_first() -> None:
    registry = Registry()
    sink = Sink(True)
    for i in range(10):
        registry.add(LocalSocket(f"s{i}", "1", deliver=sink.deliver, deliver_now=sink.deliver_now))
        registry.join(f"s{i}", "r")
    fanout = RoomFanout(Recorder(), registry, run, remember=25)  # type: ignore[arg-type]
    for n in range(5):
        await fanout.deliver({"type": "room.emit", "room": "r", "frame": f"{n}", "except": None,
                              "event": f"e{n}"})  # fmt: skip
    assert fanout._remembered <= 25 + 10 and list(fanout._served)[-1] == "e4"
    assert "e0" not in fanout._served
    assert len(sink.written) == 50  # every socket got every event once


async def test_a_rename_heard_by_two_workers_reaches_each_member_once() -> None:
    """User 1 has sockets on two workers, both in room r: each worker forwards the one
    user.renamed broadcast to r, and the member on the second worker is served once."""
    recorders = [Recorder(), Recorder()]
    nodes = [
        WorkerNode(publisher=recorder, subscriber=LocalBus(), directory=LocalDirectory(),  # type: ignore[arg-type]
                   encode_event=lambda *event: repr(event), procid=f"w{i}")
        for i, recorder in enumerate(recorders)
    ]  # fmt: skip
    user_sinks, member = [Sink(True), Sink(True)], Sink(True)
    socket_with(nodes[0], "user-on-0", user_sinks[0], "r")
    socket_with(nodes[1], "user-on-1", user_sinks[1], "r")
    nodes[1].add(LocalSocket("member", "2", deliver=member.deliver, deliver_now=member.deliver_now))
    nodes[1].registry.join("member", "r")
    rename = events.user_renamed("1")
    for node in nodes:  # the broadcast reaches every worker's `cluster` group
        await node._handlers[events.USER_RENAMED](dict(rename))
    published = [message for recorder in recorders for _, message in recorder.sent]
    assert len(published) == 2  # one copy of the room event per worker holding user 1
    for message in published:  # worker 1 holds sockets in r: it hears both copies
        await nodes[1].fanout.deliver(message)
    frame = repr(("identity-change", {"id_user": "1"}))
    assert member.written == [frame]
    assert user_sinks[1].written == [frame]


def test_a_worker_answers_how_many_room_events_a_rename_would_publish_here() -> None:
    """One per room of the user's sockets on this worker, however many of them share it."""
    node = WorkerNode(
        publisher=LocalBus(), subscriber=LocalBus(), directory=LocalDirectory(),
        encode_event=str, procid="me",
    )  # fmt: skip
    socket_with(node, "one", Sink(True), "a", "b")
    socket_with(node, "two", Sink(True), "b", "c")
    node.add(LocalSocket("other", "2", deliver=Sink(True).deliver))
    node.registry.join("other", "d")
    assert node._answer("rename_reach", {"id_user": "1"}) == 3
    assert node._answer("rename_reach", {"id_user": "2"}) == 1
    assert node._answer("rename_reach", {"id_user": "3"}) == 0
