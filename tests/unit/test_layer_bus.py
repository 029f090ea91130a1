"""rooms.cluster.layer_bus on Channels' in-memory layer: what the node gets from any layer."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from channels.layers import InMemoryChannelLayer

from rooms.cluster.layer_bus import LayerBus


async def until(condition: Any) -> None:
    for _ in range(200):  # 2 s
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("not within 2 s")


async def test_a_groups_messages_come_with_its_name_and_stop_when_it_is_discarded() -> None:
    layer = InMemoryChannelLayer()
    bus = LayerBus(layer)
    own: list[dict[str, Any]] = []
    grouped: list[tuple[str, dict[str, Any]]] = []
    bus.listen(own.append)
    bus.listen_groups(lambda group, message: grouped.append((group, message)))
    channel = await bus.new_channel("worker.")
    await bus.group_add("room-a")
    await bus.group_add("room-b")
    await bus.group_send("room-a", {"type": "socketio.emit", "n": 1})
    await bus.group_send("room-b", {"type": "socketio.emit", "n": 2})
    await bus.send(channel, {"type": "cluster.reply", "n": 3})
    await until(lambda: len(grouped) == 2 and len(own) == 1)
    assert sorted((group, message["n"]) for group, message in grouped) == [
        ("room-a", 1),
        ("room-b", 2),
    ]
    assert own == [{"type": "cluster.reply", "n": 3}]
    assert await bus.group_send("room-a", {"n": 4}) is None  # how many it reached: unknown

    await bus.group_discard("room-a")
    await bus.group_send("room-a", {"type": "socketio.emit", "n": 5})
    await bus.group_send("room-b", {"type": "socketio.emit", "n": 6})
    await until(lambda: ("room-b", {"type": "socketio.emit", "n": 6}) in grouped)
    assert [message["n"] for group, message in grouped if group == "room-a"] == [1, 4]
    await bus.close()
    assert not [task for task in asyncio.all_tasks() if task.get_name().startswith("receive")]


async def test_group_send_many_says_which_messages_the_layer_took() -> None:
    class Refusing(InMemoryChannelLayer):
        async def group_send(self, group: str, message: dict[str, Any]) -> None:
            if group == "down":
                raise ConnectionError("Redis away")
            await super().group_send(group, message)

    bus = LayerBus(Refusing())
    assert await bus.group_send_many([("up", {"n": 1}), ("down", {"n": 2})]) == [True, False]
    assert not bus.send_soon("any", {})


async def test_a_join_the_layer_refused_can_be_tried_again() -> None:
    class FailingOnce(InMemoryChannelLayer):
        failed = False

        async def group_add(self, group: str, channel: str) -> None:
            if not self.failed:
                self.failed = True
                raise ConnectionError("Redis away")
            await super().group_add(group, channel)

    bus = LayerBus(FailingOnce())
    grouped: list[str] = []
    bus.listen_groups(lambda group, message: grouped.append(group))
    with pytest.raises(ConnectionError):
        await bus.group_add("room-a")
    await bus.group_add("room-a")
    await bus.group_send("room-a", {"type": "socketio.emit"})
    await until(lambda: grouped == ["room-a"])
    await bus.close()
