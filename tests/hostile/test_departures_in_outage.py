"""A socket that leaves while Redis is down is announced once Redis is back: its departure
waits in its worker (rooms.cluster.departures) until every worker has resubscribed its
rooms, then every other member of its room hears `socket-disconnected`, once."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.integration.recording import close_all, spread_clients
from tests.integration.servers import RedisServer, http, wait_until

ROOM = "outage"


async def test_a_socket_leaving_during_a_redis_restart_is_announced_when_redis_returns(
    private_redis: RedisServer, start_cluster: Any
) -> None:
    """Seven sockets in one room on two workers; Redis stopped; one socket (whose worker
    holds another member) disconnects; Redis started again, empty: within 15 s every
    other member, on both workers, hears `socket-disconnected` for it, exactly once, and
    the roster lists exactly the others."""
    cluster = await asyncio.to_thread(start_cluster, 2, private_redis)
    clients = await spread_clients(cluster.url, ROOM, 7)
    try:
        by_worker: dict[str, list[Any]] = {}
        for client in clients:
            by_worker.setdefault(client.procid, []).append(client)
        leaver = next(c for c in clients if len(by_worker[c.procid]) > 1)
        members = [c for c in clients if c is not leaver]
        leaver_sid = leaver.sid
        assert {m.procid for m in members} == set(by_worker)  # members on both workers

        private_redis.stop()
        await asyncio.sleep(1)  # the workers have noticed: their connections are gone
        await leaver.close()
        await asyncio.sleep(1)
        private_redis.start()

        for member in members:
            await member.wait_for("socket-disconnected", lambda sid: sid == leaver_sid, within=15)
        await asyncio.sleep(1)  # room for a second announcement, which must not come
        for member in members:
            assert member.payloads("socket-disconnected").count(leaver_sid) == 1

        def exact_roster() -> bool:
            status, headers, body = http(f"{cluster.url}/{ROOM}/users")
            return status == 200 and sorted(e["id_socket"] for e in body) == sorted(
                m.sid for m in members
            )

        await asyncio.to_thread(wait_until, exact_roster, 10, "an exact roster")
    finally:
        await close_all(clients)
