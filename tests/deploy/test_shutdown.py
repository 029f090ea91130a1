"""Graceful shutdown as Heroku does it: SIGTERM to every process of the dyno at once.

Heroku sends SIGTERM to all the dyno's processes (here: runcluster and its daphne workers)
and SIGKILL 30 s later. Everything must be gone well before that, and the workers must
leave the cluster themselves, so that other dynos on the same Redis stop expecting them.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path

import pytest
import redis

from tests.deploy.processes import (
    ProcfileWeb,
    fetch,
    process_group,
    production_env,
    run_command,
)
from tests.integration.recording import Client, close_all
from tests.integration.servers import RedisServer, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

# Heroku's grace period is 30 s; a clean stop must not come near it.
STOP_BUDGET_SECONDS = 10.0


def dyno_env(redis_url: str, workdir: Path, **overrides: str) -> dict[str, str]:
    """A dyno on SQLite (no PostgreSQL needed to test signals) and the given Redis."""
    (workdir / "static").mkdir(exist_ok=True)
    return production_env(
        DATABASE_URL=f"sqlite:///{workdir / 'db.sqlite3'}",
        REDIS_URL=redis_url,
        WEB_CONCURRENCY="2",
        STATIC_ROOT=str(workdir / "static"),
        **overrides,
    )


async def test_sigterm_to_the_process_group_stops_everything(
    plain_redis: RedisServer, tmp_path: Path
) -> None:
    """killpg(SIGTERM) with a socket open: all processes exit within 10 s, leaving no entry."""
    env = dyno_env(plain_redis.url, tmp_path)
    run_command("python manage.py reset_db", env)
    web = await asyncio.to_thread(ProcfileWeb(env, tmp_path).start)
    client = await Client().connect(web.url, "1", "closing-time")
    try:
        directory = redis.Redis.from_url(plain_redis.url)
        key = f"{env['CHANNEL_PREFIX']}:workers"
        assert directory.hlen(key) == 2
        assert len(process_group(web.pgid)) >= 3  # runcluster and its 2 workers

        elapsed = await asyncio.to_thread(web.terminate_like_heroku)

        assert elapsed < STOP_BUDGET_SECONDS, web.logs()
        assert process_group(web.pgid) == []
        assert directory.hgetall(key) == {}, "a worker did not unregister itself"
        assert web.logs().count("left the cluster") == 2, web.logs()
        await asyncio.wait_for(client.sio.wait(), 5)  # returns once the server closed it
    finally:
        await close_all([client])
        await asyncio.to_thread(web.stop)


async def test_other_dynos_stop_expecting_a_stopped_one(
    plain_redis: RedisServer, tmp_path: Path
) -> None:
    """Two dynos share one Redis; after one is SIGTERMed the other's roster answers at once."""
    prefix = f"d{uuid.uuid4().hex[:8]}"
    # A long gather deadline: a roster that waited for a departed worker would show it.
    env = dyno_env(plain_redis.url, tmp_path, CHANNEL_PREFIX=prefix, CLUSTER_GATHER_DEADLINE="3")
    run_command("python manage.py reset_db", env)
    survivor = await asyncio.to_thread(ProcfileWeb(env, tmp_path).start)
    leaving = await asyncio.to_thread(ProcfileWeb(env, tmp_path).start, 4)
    room = f"dynos-{uuid.uuid4().hex[:8]}"
    clients = [
        await Client().connect(survivor.url, "1", room),
        await Client().connect(leaving.url, "2", room),
    ]
    try:
        before = await asyncio.to_thread(fetch, f"{survivor.url}/{room}/users")
        assert before.headers["X-Workers-Expected"] == "4"
        assert len(json.loads(before.body)) == 2

        elapsed = await asyncio.to_thread(leaving.terminate_like_heroku)
        assert elapsed < STOP_BUDGET_SECONDS, leaving.logs()

        started = time.monotonic()
        after = await asyncio.to_thread(fetch, f"{survivor.url}/{room}/users")
        took = time.monotonic() - started
        assert after.status == 200
        assert after.headers["X-Workers-Expected"] == after.headers["X-Workers-Responded"] == "2"
        assert [e["id_user"] for e in json.loads(after.body)] == ["1"]
        assert took < 1.0, f"the roster waited {took:.2f} s for a departed worker"
        assert wait_until(lambda: len(survivor.live_workers()) == 2, 5, "2 live workers")
    finally:
        await close_all(clients)
        await asyncio.to_thread(leaving.stop)
        await asyncio.to_thread(survivor.stop)
