"""One worker asking another (rooms.cluster.requests): the answer comes back to the asker;
a worker nobody listens for, one that does not answer, and a refusal fail the ask."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from rooms.cluster.requests import Requests, WorkerUnavailable


class Bus:
    """Channels to the Requests listening on them, as the node's subscriber hands over."""

    def __init__(self) -> None:
        self.listening: dict[str, Requests] = {}

    async def send(self, channel: str, message: dict[str, Any]) -> int:
        requests = self.listening.get(channel)
        if requests is None:
            return 0
        if message["type"] == "cluster.request":
            asyncio.get_running_loop().call_soon(requests.take_request, message)
        else:
            asyncio.get_running_loop().call_soon(requests.take_reply, message)
        return 1


async def bus_call(method: Any, *args: Any) -> None:
    await method(*args)


def worker(bus: Bus, procid: str) -> Requests:
    requests = Requests(procid=procid, publisher=bus, bus_call=bus_call)  # type: ignore[arg-type]
    requests.reply_to = f"ch.{procid}"
    bus.listening[requests.reply_to] = requests
    return requests


async def test_the_worker_asked_answers_with_its_handler() -> None:
    bus = Bus()
    asker, owner = worker(bus, "a"), worker(bus, "b")

    async def poll(args: dict[str, Any]) -> dict[str, Any]:
        await asyncio.sleep(0.01)  # a long-poll holds its answer a while
        return {"body": f"4{args['sid']}"}

    owner.serve("eio.poll", poll)
    assert await asker.ask("ch.b", "eio.poll", {"sid": "x"}, within=1) == {"body": "4x"}
    assert not asker._pending


async def test_nobody_listening_fails_at_once_and_silence_after_the_timeout() -> None:
    bus = Bus()
    asker, silent = worker(bus, "a"), worker(bus, "b")

    async def never(args: dict[str, Any]) -> None:
        await asyncio.Event().wait()

    silent.serve("eio.poll", never)
    with pytest.raises(WorkerUnavailable, match="nobody listens"):
        await asker.ask("ch.gone", "eio.poll", {}, within=5)
    with pytest.raises(WorkerUnavailable, match="no answer"):
        await asker.ask("ch.b", "eio.poll", {}, within=0.05)
    await silent.close()
    assert not silent._answering


async def test_a_refusal_or_an_unknown_kind_fails_the_ask_with_its_reason() -> None:
    bus = Bus()
    asker, owner = worker(bus, "a"), worker(bus, "b")

    async def refuse(args: dict[str, Any]) -> None:
        raise LookupError("Session ID unknown")

    owner.serve("eio.post", refuse)
    with pytest.raises(WorkerUnavailable, match="Session ID unknown"):
        await asker.ask("ch.b", "eio.post", {}, within=1)
    with pytest.raises(WorkerUnavailable, match="no handler"):
        await asker.ask("ch.b", "eio.other", {}, within=1)
