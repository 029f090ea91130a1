"""A server rename reaches each socket of the renamed user's rooms once, however many
workers hold that user's sockets: every such worker forwards the one `user.renamed`
broadcast to the rooms, and the copies carry the broadcast's event id, by which each
receiving worker serves a socket once (rooms.cluster.fanout)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import pytest

from tests.hostile.clusters import SharedClusters
from tests.hostile.harm import Unharmed, on_worker
from tests.integration.recording import Client, close_all
from tests.integration.servers import Cluster, http


@pytest.fixture(scope="module")
def cluster(hostile_clusters: SharedClusters) -> Iterator[Cluster]:
    yield from hostile_clusters.for_module("development")


async def test_a_rename_of_a_user_on_two_workers_reaches_each_member_once(
    cluster: Cluster,
) -> None:
    """User 1 has a socket on each worker in the room, user 2 too; users 3 and 4 each have
    one socket, on different workers. One PUT /users/1 gives every socket in the room one
    identity-change {"id_user": "1"}. The renames of 3 and 4 that follow are markers: each
    is forwarded by one worker only, after that worker's copy of the first rename, on the
    same Redis connection and room channel, so a socket that heard both markers has been
    handed every copy of the first rename."""
    room = f"renames-{uuid.uuid4().hex[:8]}"
    first = await Client().connect(cluster.url, "1", room)
    here = first.procid
    clients = [first]
    try:
        clients.append(await on_worker(cluster, "1", room, lambda procid: procid != here))
        there = clients[-1].procid
        for id_user, worker in (("2", here), ("2", there), ("3", here), ("4", there)):
            clients.append(await on_worker(cluster, id_user, room, worker.__eq__))
        last = clients[-1]
        for client in clients[:-1]:  # every arrival announced: the room is settled
            await client.wait_for("socket-connected", lambda sid: sid == last.sid)
        watch = Unharmed(cluster, room, [c.sid for c in clients])
        async with watch.watching():
            for id_user in ("1", "3", "4"):
                status, _, _ = await asyncio.to_thread(
                    http, f"{cluster.url}/users/{id_user}", "PUT", {"name": f"Name {id_user}"}
                )
                assert status == 204
            for client in clients:
                for marker in ("3", "4"):
                    await client.wait_for("identity-change", lambda p, m=marker: p["id_user"] == m)
        for client in clients:
            renames = [p for p in client.payloads("identity-change") if p["id_user"] == "1"]
            assert renames == [{"id_user": "1"}], (
                client.procid,
                client.payloads("identity-change"),
            )
    finally:
        await close_all(clients)
