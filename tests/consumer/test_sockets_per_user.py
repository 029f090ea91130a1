"""rooms.runtime.sockets_per_user without Redis: the cluster is this process, whose node is
asked on its own event loop from a Django thread (the admin's "online now")."""

from __future__ import annotations

import asyncio

import pytest

from rooms import runtime
from rooms.cluster.node import WorkerNode
from tests.consumer.conftest import ClientFactory

pytestmark = pytest.mark.django_db(transaction=True)


async def test_counts_this_processs_sockets_per_user(
    connect: ClientFactory, node: WorkerNode
) -> None:
    """Two sockets of user 1 and one of user 2 are counted as such, from another thread."""
    for id_user in ("1", "1", "2"):
        await connect(id_user=id_user)
    assert await asyncio.to_thread(runtime.sockets_per_user) == {"1": 2, "2": 1}


async def test_on_the_nodes_own_loop_it_answers_none_instead_of_hanging(
    connect: ClientFactory, node: WorkerNode
) -> None:
    """Waiting on the loop that must answer would block it: None, at once."""
    await connect(id_user="1")
    assert runtime.sockets_per_user() is None
