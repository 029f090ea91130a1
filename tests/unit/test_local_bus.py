"""The in-process bus (no Redis): what is published to a channel or group this process
subscribed reaches its listener once, in order, and never inside the publisher's call."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from rooms.bus import local
from rooms.bus.local import LocalBus, SingleProcessChannelLayer


async def test_messages_reach_the_listener_in_order_after_the_publisher_returns() -> None:
    bus = LocalBus()
    received: list[dict[str, Any]] = []
    bus.listen(received.append)
    channel = await bus.new_channel("worker.")
    await bus.group_add("room")
    assert await bus.send(channel, {"type": "direct"}) == 1
    assert await bus.group_send("room", {"type": "grouped"}) == 1
    assert bus.send_soon(channel, {"type": "soon"})
    assert received == []  # not inside the publisher's call
    await asyncio.sleep(0)
    assert [m["type"] for m in received] == ["direct", "grouped", "soon"]


async def test_a_group_left_or_never_joined_reaches_nobody() -> None:
    bus = LocalBus()
    received: list[dict[str, Any]] = []
    bus.listen(received.append)
    await bus.new_channel("worker.")
    await bus.group_add("room")
    await bus.group_discard("room")
    assert await bus.group_send("room", {"type": "after discard"}) == 0
    assert await bus.group_send("other", {"type": "never joined"}) == 0
    assert await bus.send("someone-else", {"type": "not ours"}) == 0
    await asyncio.sleep(0)
    assert received == []


def test_a_group_send_from_another_threads_loop_reaches_the_listening_loop() -> None:
    """async_to_sync runs a sender on a loop of its own: the listener still hears it on its
    own loop, with the group it came through."""
    bus = LocalBus()

    async def listen() -> tuple[str, dict[str, Any]]:
        heard: asyncio.Future[tuple[str, dict[str, Any]]] = asyncio.Future()
        bus.listen(lambda message: None)
        bus.listen_groups(lambda group, message: heard.set_result((group, message)))
        await bus.group_add("room")
        sender = threading.Thread(target=asyncio.run, args=(bus.group_send("room", {"n": 1}),))
        sender.start()
        sender.join()
        return await asyncio.wait_for(heard, 2)

    assert asyncio.run(listen()) == ("room", {"n": 1})


async def test_a_group_send_in_a_process_without_a_node_says_it_reaches_no_socket(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """`manage.py shell` with no REDIS_URL (and no `make run` to find): once, a warning."""
    monkeypatch.setattr(local, "PROCESS_BUS", LocalBus())
    monkeypatch.setattr(SingleProcessChannelLayer, "_warned", False)
    layer = SingleProcessChannelLayer()
    await layer.group_send("r.Maths", {"type": "socketio.emit", "event": "news", "args": []})
    await layer.group_send("r.Maths", {"type": "socketio.emit", "event": "news", "args": []})
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "reaches no socket" in warnings[0], warnings
