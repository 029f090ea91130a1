"""The single-process subscriber (in-memory layer) keeps receiving after a bad message."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from channels.layers import InMemoryChannelLayer

from rooms.subscriber import LayerSubscriber


async def test_a_message_its_owner_fails_on_does_not_end_the_receiving(
    caplog: pytest.LogCaptureFixture,
) -> None:
    layer = InMemoryChannelLayer()
    subscriber = LayerSubscriber(layer)
    received: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    def picky(message: dict[str, Any]) -> None:
        received.put_nowait(message)
        if message["type"] == "bad":
            raise KeyError("origin")

    subscriber.listen(picky)
    channel = await subscriber.new_channel("worker.")
    await subscriber.group_add("room")
    try:
        await layer.send(channel, {"type": "bad"})
        await layer.group_send("room", {"type": "good"})
        got = [await asyncio.wait_for(received.get(), 2) for _ in range(2)]
        assert [m["type"] for m in got] == ["bad", "good"]
        assert "handling a message" in caplog.text
    finally:
        await subscriber.close()
