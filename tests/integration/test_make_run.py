"""`make run`'s own path: runcluster with no REDIS_URL starts an embedded Redis for its
workers, `manage.py` commands of the checkout find it (EMBEDDED_REDIS_FILE), and a Ctrl-C
takes everything down with it."""

from __future__ import annotations

import asyncio
import os
import re
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.recording import close_all, spread_clients
from tests.integration.servers import STARTED_CLUSTERS, Cluster, http

pytestmark = [pytest.mark.integration, pytest.mark.daphne]

EMBEDDED = re.compile(r"no REDIS_URL: started an embedded Redis at redis://127\.0\.0\.1:(\d+)/0")


def redis_server_pids(port: int) -> list[int]:
    """Live redis-server processes serving this port (their title names it: `redis-server
    127.0.0.1:PORT`), wherever they were started from: the embedded one daemonizes."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = (entry / "stat").read_text().rpartition(")")[2].split()[0]
        except OSError:
            continue
        if "redis-server" in cmdline and f":{port}" in cmdline and state != "Z":
            pids.append(int(entry.name))
    return pids


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    try:  # a zombie (exited, not yet reaped by its parent) is gone for our purpose
        return stat.read_text().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


@pytest.fixture
def make_run(tmp_path: Path) -> Iterator[Cluster]:
    """runcluster --workers 2 with REDIS_URL unset, in a process group of its own."""
    url_file = str(tmp_path / "run" / "redis-url")
    cluster = Cluster(
        workers=2,
        redis_url="",
        workdir=tmp_path,
        new_session=True,
        extra_env={"EMBEDDED_REDIS_FILE": url_file},
    )
    try:
        yield cluster.start()
    finally:
        cluster.stop()
        print(f"---- cluster :{cluster.port} log ----\n{cluster.logs()[-4000:]}")


async def test_make_run_embedded_redis_and_ctrl_c(make_run: Cluster) -> None:
    """Two workers meet through the embedded Redis (one roster holds sockets of both); its
    URL is in EMBEDDED_REDIS_FILE, through which `manage.py shell` reaches the sockets;
    SIGINT to the job's process group, as Ctrl-C in the terminal sends it, stops
    runcluster with status 0, both workers and the embedded redis-server, and removes
    the file."""
    assert make_run in STARTED_CLUSTERS and make_run.process is not None
    found = EMBEDDED.search(make_run.logs())
    assert found, make_run.logs()
    redis_port = int(found.group(1))
    redis_pids = redis_server_pids(redis_port)
    assert len(redis_pids) == 1, redis_pids
    redis_dir = Path(os.readlink(f"/proc/{redis_pids[0]}/cwd"))  # its --dir, a temp directory
    assert redis_dir.name.startswith("identity-playground-redis-"), redis_dir
    url_file = Path(make_run.extra_env["EMBEDDED_REDIS_FILE"])
    assert await asyncio.to_thread(url_file.read_text) == f"redis://127.0.0.1:{redis_port}/0\n"

    clients = await spread_clients(make_run.url, "make-run", 4)
    heard: asyncio.Queue[str] = asyncio.Queue()
    for client in clients:
        client.sio.on("news", lambda data, sid=client.sid: heard.put_nowait(sid))
    try:
        # manage.py shell of the same checkout, REDIS_URL unset, as a developer runs it
        code = "from rooms.runtime import emit_to_room; emit_to_room('make-run', 'news', 'shell')"
        await asyncio.to_thread(make_run.shell, code)
        got = {await asyncio.wait_for(heard.get(), 5) for _ in clients}
        assert got == {c.sid for c in clients}
        status, headers, body = await asyncio.to_thread(http, f"{make_run.url}/make-run/users")
        assert status == 200
        assert headers["X-Workers-Expected"] == headers["X-Workers-Responded"] == "2"
        assert sorted(e["id_socket"] for e in body) == sorted(c.sid for c in clients)
        assert {e["procid"] for e in body} == {c.procid for c in clients}
        assert len({c.procid for c in clients}) == 2
    finally:
        await close_all(clients)

    workers = make_run.children()
    assert len(workers) == 2
    os.killpg(make_run.process.pid, signal.SIGINT)
    assert await asyncio.to_thread(make_run.process.wait, 15) == 0, make_run.logs()
    # runcluster returns only once its workers and the embedded Redis have exited
    assert [pid for pid in [*workers, *redis_pids] if alive(pid)] == []
    assert redis_server_pids(redis_port) == []
    assert not await asyncio.to_thread(redis_dir.exists)
    assert not await asyncio.to_thread(url_file.exists)
