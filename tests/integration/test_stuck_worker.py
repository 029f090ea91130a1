"""A worker that does not stop after SIGTERM: its stacks reach the log, then SIGKILL.

The supervisor (rooms.runner.supervisor) runs in this process with one real daphne worker
whose application blocks in a shutdown trigger (tests/integration/hanging_app.py).
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import signal
import time
from pathlib import Path

import pytest

from rooms.runner.supervisor import ClusterConfig, Supervisor, listening_socket
from tests.integration.servers import Cluster, RedisServer

pytestmark = [pytest.mark.integration, pytest.mark.daphne, pytest.mark.timeout(120)]

GRACE_SECONDS = 2.0


async def test_a_worker_stuck_in_its_stop_dumps_its_stacks_then_is_killed(
    redis_server: RedisServer,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """After the grace the supervisor says which worker is late, the worker's output shows
    every thread's stack with the call it is blocked in, and the worker is gone."""
    cluster = Cluster(workers=1, redis_url=redis_server.url, workdir=tmp_path)
    await asyncio.to_thread(cluster.reset_db)
    config = ClusterConfig(
        workers=1,
        host="127.0.0.1",
        port=cluster.port,
        websocket_max_message_size=1_000_000,
        application="tests.integration.hanging_app:application",
    )
    supervisor = Supervisor(
        config, cluster.env(), listening_socket(config.host, config.port), stop_grace=GRACE_SECONDS
    )
    caplog.set_level(logging.INFO, logger="rooms.runner.supervisor")
    running = asyncio.create_task(supervisor.run())
    try:
        await asyncio.to_thread(cluster.wait_for_workers, 1)
        pid = supervisor.processes[0].pid

        started = time.monotonic()
        os.kill(os.getpid(), signal.SIGTERM)  # the supervisor's loop handles it (run())
        await asyncio.wait_for(running, 30)
        took = time.monotonic() - started
    finally:
        if not running.done():
            supervisor.processes[0].kill()
            running.cancel()

    assert took >= GRACE_SECONDS
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert supervisor.processes[0].returncode == -signal.SIGKILL
    assert f"worker pid {pid} still running 2 s after SIGTERM" in caplog.text
    output = capfd.readouterr().out
    prefix = re.escape(f"[w0 {pid}] ")
    assert re.search(
        prefix + r"(Current thread|Thread) 0x[0-9a-f]+ \(most recent call first\)", output
    ), output
    assert re.search(
        prefix + r'  File ".*hanging_app\.py", line \d+ in hang_on_shutdown', output
    ), output
    assert cluster.live_workers() == []  # the port is closed
