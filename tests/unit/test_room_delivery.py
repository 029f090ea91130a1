"""A room event reaches each of this worker's sockets in it once: written at once where the
socket can take it so, awaited otherwise."""

from __future__ import annotations

from rooms.bus.local import LocalBus
from rooms.cluster.membership import LocalDirectory
from rooms.cluster.node import WorkerNode
from rooms.cluster.registry import LocalSocket


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
    for index in (0, 1):  # what emit_to_rooms(["a", "b"], ...) publishes, one per room
        message = {"rooms": ["a", "b"], "index": index, "frame": "42", "except": "sender"}
        await node.fanout.deliver({"type": "room.emit", **message})
    assert (direct.written, direct.awaited) == (["42"], [])
    assert (asgi.written, asgi.awaited) == ([], ["42"])
    assert (both.written, both.awaited) == (["42"], [])
    assert (sender.written, sender.awaited) == ([], [])


def test_a_socket_without_a_direct_path_is_always_awaited() -> None:
    plain = LocalSocket("s", "1", deliver=Sink(False).deliver)
    assert plain.deliver_now("42") is False
