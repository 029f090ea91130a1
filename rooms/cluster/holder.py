"""This process's one WorkerNode, started by whoever needs it first.

Consumers and views get it through the ASGI scope (`scope["cluster"]`, put there by
rooms.runtime.ClusterScope), never by importing a global: the cluster knows nothing of
them, and tests can hand them any node.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from rooms.bus.directory import ClusterUnavailable
from rooms.cluster.node import WorkerNode


class NodeHolder:
    """Starts the node on first use and hands the same one to every later caller on that
    event loop; a failed start is raised to every caller waiting for it, and the next
    caller tries again."""

    def __init__(self, build: Callable[[], WorkerNode]) -> None:
        self.build = build
        self._node: WorkerNode | None = None
        self._starting: asyncio.Future[WorkerNode] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def started(self) -> WorkerNode | None:
        return self._node

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The event loop the node runs on."""
        return self._loop

    async def node(self) -> WorkerNode:
        """This process's started node; raises ClusterUnavailable when it cannot start."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # a new loop (each test has its own): start afresh on it
            self._node, self._starting, self._loop = None, None, loop
        if self._node is not None:
            return self._node
        if self._starting is None:
            self._starting = loop.create_future()
            node = self.build()
            try:
                await node.start()
            except Exception as exc:
                error = ClusterUnavailable(f"cannot join the cluster: {exc}")
                self._starting.set_exception(error)
                self._starting.exception()  # retrieved: a later caller retries afresh
                self._starting = None
                raise error from exc
            self._node = node
            self._starting.set_result(node)
            return node
        return await asyncio.shield(self._starting)

    async def stop(self) -> None:
        node, self._node, self._starting = self._node, None, None
        if node is not None:
            await node.stop()
