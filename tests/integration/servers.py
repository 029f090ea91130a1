"""Real processes for integration tests: a private redis-server and runcluster clusters.

Every server listens on a free port, tests wait until it answers, and each cluster gets
its own database and channel prefix, so tests never see each other's state. The database is
a SQLite file copied from one that `manage.py reset_db` migrated and seeded once per test
process (migrating takes a Django start and seconds, a copy milliseconds); when the test
process's DATABASE_URL names a PostgreSQL server (the PostgreSQL pass), a database of its own
on that server, dropped when the cluster stops.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import quote

import psycopg

from rooms.runner.embedded_redis import free_port, redis_server_binary

ROOT = Path(__file__).resolve().parents[2]


def wait_until(predicate: Any, timeout: float, what: str, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout} s waiting for {what}")


class RedisServer:
    """A redis-server of the test's own, on a free port, keeping nothing on disk."""

    def __init__(self, workdir: Path, *, password: str | None = None) -> None:
        self.port = free_port()
        auth = f":{quote(password, safe='')}@" if password else ""
        self.url = f"redis://{auth}127.0.0.1:{self.port}/0"
        self.password = password
        self.workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        self.process = subprocess.Popen(
            [redis_server_binary(), "--bind", "127.0.0.1", "--port", str(self.port),
             "--save", "", "--appendonly", "no", "--dir", str(self.workdir),
             *(["--requirepass", self.password] if self.password else [])],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        wait_until(self.answers, 10, "redis-server")

    def answers(self) -> bool:
        import socket

        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as conn:
                conn.sendall(b"PING\r\n")
                return conn.recv(64).startswith((b"+PONG", b"-NOAUTH"))
        except OSError:
            return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(5)
        self.process = None


def http(
    url: str, method: str = "GET", body: Any = None, timeout: float = 5
) -> tuple[int, dict[str, str], Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            raw = response.read()
            status, headers = response.status, dict(response.headers)
    except urllib.error.HTTPError as exc:
        raw, status, headers = exc.read(), exc.code, dict(exc.headers)
    return status, headers, json.loads(raw) if raw else None


def run_reset_db(env: dict[str, str]) -> None:
    """`manage.py reset_db` on the database of `env`: migrated, exactly the seed users."""
    subprocess.run(
        [sys.executable, "manage.py", "reset_db"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        timeout=60,
    )


_seeded_lock = threading.Lock()
_seeded: list[Path] = []


def seeded_database(env: dict[str, str]) -> Path:
    """This process's migrated and seeded SQLite database, made on first use (with `env`,
    a cluster's environment, pointed at it) and removed when the process exits."""
    with _seeded_lock:
        if not _seeded:
            folder = Path(tempfile.mkdtemp(prefix="identity-playground-seeded-"))
            atexit.register(shutil.rmtree, folder, ignore_errors=True)
            path = folder / "db.sqlite3"
            run_reset_db({**env, "DATABASE_URL": f"sqlite:///{path}"})
            _seeded.append(path)
        return _seeded[0]


def copy_database(source: Path, target: Path) -> None:
    """SQLite's online backup of `source` into `target`: a cluster still running on the
    target (two clusters of one test share its folder) sees the copy as one write."""
    with (
        contextlib.closing(sqlite3.connect(source)) as reader,
        contextlib.closing(sqlite3.connect(target, timeout=20)) as writer,
    ):
        reader.backup(writer)


def postgres_server() -> str | None:
    """The server of the test process's DATABASE_URL when it is PostgreSQL, else None."""
    url = os.environ.get("DATABASE_URL", "")
    if url.startswith(("postgres://", "postgresql://")):
        return url.rsplit("/", 1)[0]
    return None


def postgres_admin(server: str, statement: str) -> None:
    with psycopg.connect(f"{server}/postgres", autocommit=True, connect_timeout=10) as admin:
        admin.execute(statement)  # type: ignore[arg-type]  # names made by this module


STARTED_CLUSTERS: list[Cluster] = []
"""The clusters started in this test process whose log may still grow, for the log guard
(tests/conftest.py), which drops each one once it has exited and its log was read."""


# CHANNEL_LAYER_BACKEND values the cluster runs on: the bus's own layer (the default) and
# channels_redis's two (rooms.cluster.layer_bus)
LAYER_BACKENDS = {
    "bus": "rooms.bus.layer.BusChannelLayer",
    "channels_redis.pubsub": "channels_redis.pubsub.RedisPubSubChannelLayer",
    "channels_redis.core": "channels_redis.core.RedisChannelLayer",
}


@dataclass
class Cluster:
    """`manage.py runcluster` as a user starts it, on a free port.

    An empty `redis_url` leaves REDIS_URL unset, as `make run` does (an embedded Redis);
    `new_session` gives it a process group of its own, as a terminal's job has.
    """

    workers: int
    redis_url: str
    workdir: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    prefix: str = field(default_factory=lambda: f"t{uuid.uuid4().hex[:8]}")
    process: subprocess.Popen[bytes] | None = None
    new_session: bool = False
    application: str = ""  # runcluster's --application; the project's when empty
    starts: ClassVar[int] = 0
    """Clusters started in this process (tests/conftest.py asks which test started one)."""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
        env.setdefault("DEBUG", "on")  # development settings unless a test asks otherwise
        env.update(
            DATABASE_URL=self.database_url,
            REDIS_URL=self.redis_url,
            CHANNEL_PREFIX=self.prefix,
            CLUSTER_GATHER_DEADLINE="1.0",
            CLUSTER_JANITOR_INTERVAL="0.5",
            # a shared cluster idle between tests keeps its workers (test_mass_disconnect
            # recycles them)
            WORKER_RECYCLE_RSS_GROWTH="0",
            DJANGO_SETTINGS_MODULE="identity_playground.settings",
            PYTHONUNBUFFERED="1",
        )
        if not self.redis_url:
            del env["REDIS_URL"]
        env.update(self.extra_env)
        return env

    @property
    def database(self) -> Path:
        return self.workdir / "db.sqlite3"

    @property
    def database_url(self) -> str:
        server = postgres_server()
        return f"{server}/{self.prefix}" if server else f"sqlite:///{self.database}"

    def reset_db(self) -> None:
        """The cluster's database, migrated and holding exactly the seed users: a copy of
        the seeded SQLite database, or `manage.py reset_db` on PostgreSQL or on a database
        a test chose itself."""
        env = self.env()
        server = postgres_server()
        if env["DATABASE_URL"] == f"sqlite:///{self.database}":
            copy_database(seeded_database(env), self.database)
            return
        if server and env["DATABASE_URL"] == self.database_url:
            postgres_admin(server, f'DROP DATABASE IF EXISTS "{self.prefix}" WITH (FORCE)')
            postgres_admin(server, f'CREATE DATABASE "{self.prefix}"')
        run_reset_db(env)

    def restore_seed_users(self) -> None:
        """The running cluster's users are exactly the seed users again."""
        env = self.env()
        if env["DATABASE_URL"] == f"sqlite:///{self.database}":
            copy_database(seeded_database(env), self.database)
        else:
            run_reset_db(env)

    def drop_database(self) -> None:
        """The cluster's PostgreSQL database, once its workers are gone."""
        server = postgres_server()
        if server and self.env()["DATABASE_URL"] == self.database_url:
            postgres_admin(server, f'DROP DATABASE IF EXISTS "{self.prefix}" WITH (FORCE)')

    def start(self) -> Cluster:
        env = self.env()
        self.reset_db()
        self.log = open(self.log_path, "wb")  # noqa: SIM115
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "runcluster", "--workers", str(self.workers),
             "--port", str(self.port),
             *(["--application", self.application] if self.application else [])],
            cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT,
            start_new_session=self.new_session,
        )  # fmt: skip
        STARTED_CLUSTERS.append(self)
        Cluster.starts += 1
        self.wait_for_workers(self.workers)
        return self

    def live_workers(self) -> list[dict[str, Any]]:
        try:
            status, _, body = http(f"{self.url}/workers", timeout=3)
        except OSError:
            return []
        return body if status == 200 else []

    def wait_for_workers(self, count: int, timeout: float = 30) -> list[dict[str, Any]]:
        return wait_until(
            lambda: len(self.live_workers()) == count and self.live_workers(),
            timeout,
            f"{count} live workers",
        )

    def children(self) -> list[int]:
        assert self.process is not None
        path = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        return [int(pid) for pid in path.read_text().split()]

    @property
    def log_path(self) -> Path:
        return self.workdir / f"cluster-{self.port}.log"

    def shell(self, code: str, timeout: float = 60) -> str:
        """`manage.py shell -c code` in a process of its own with this cluster's settings, as
        a developer or a cron job runs Django code beside the cluster; returns its output."""
        result = subprocess.run(
            [sys.executable, "manage.py", "shell", "-c", code],
            cwd=ROOT,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=True,
        )
        return result.stdout

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_size(self) -> int:
        """Bytes logged so far: where `logs_since` reads on from."""
        return self.log_path.stat().st_size

    def logs_since(self, offset: int) -> str:
        """What the cluster logged after its first `offset` bytes."""
        with self.log_path.open("rb") as log:
            log.seek(offset)
            return log.read().decode(errors="replace")

    def exited(self) -> bool:
        """Stopped, or its supervisor gone: its log gains nothing more."""
        return self.process is None or self.process.poll() is not None

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:  # else the test stopped it already
            for pid in self.children():  # un-hang any SIGSTOPped worker so it can exit
                os.kill(pid, signal.SIGCONT)
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.log.close()
        self.process = None
        self.drop_database()
