"""Production-like processes: a TLS-only Redis, and the Procfile's commands run as Heroku does.

Heroku runs each Procfile line with `bash -c` and $PORT set; on shutdown it sends SIGTERM to
every process of the dyno at once and SIGKILL 30 s later. `ProcfileWeb` starts the `web`
line in a session of its own, so the test can do the same with one `os.killpg`.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import redis

from rooms.runner.embedded_redis import free_port, redis_server_binary
from tests.integration.servers import ROOT, wait_until

PROCFILE = ROOT / "Procfile"
VENV_BIN = str(Path(sys.executable).parent)
# Settings the tests set themselves; inherited values must not leak into the processes.
_SETTINGS_VARS = (
    "DEBUG", "SECRET_KEY", "ALLOWED_HOSTS", "CSRF_TRUSTED_ORIGINS", "DATABASE_URL", "REDIS_URL",
    "CHANNEL_PREFIX", "WEB_CONCURRENCY", "PORT", "STATIC_ROOT", "SECURE_SSL_REDIRECT",
    "SECURE_PROXY_SSL_HEADER", "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE",
    "SECURE_HSTS_SECONDS", "SECURE_HSTS_INCLUDE_SUBDOMAINS", "SECURE_HSTS_PRELOAD",
    "REDIS_TLS_VERIFY", "REDIS_TLS_CA_FILE", "SERVER_TUNING",
)  # fmt: skip


def app_json_config(path: Path = ROOT / "app.json") -> dict[str, str]:
    """The config vars a Heroku deploy from app.json starts with (those with a value;
    generated ones such as SECRET_KEY are made by the test)."""
    env = json.loads(path.read_text())["env"]
    return {name: str(spec["value"]) for name, spec in env.items() if "value" in spec}


def procfile_commands(path: Path = PROCFILE) -> dict[str, str]:
    """Process type -> command, as Heroku reads the Procfile (`name: command` lines)."""
    commands: dict[str, str] = {}
    for line in path.read_text().splitlines():
        name, sep, command = line.partition(":")
        if sep and name.strip() and not name.lstrip().startswith("#"):
            commands[name.strip()] = command.strip()
    return commands


def production_env(**overrides: str) -> dict[str, str]:
    """The environment of a production dyno as app.json configures it, plain HTTP locally
    (no TLS router in front) and served as 127.0.0.1.

    `python` on PATH is this venv's, as the buildpack's is on Heroku.
    """
    env = {k: v for k, v in os.environ.items() if k not in _SETTINGS_VARS}
    env.update(app_json_config())
    env.update(
        PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
        DEBUG="off",
        SECRET_KEY=secrets.token_urlsafe(50),
        ALLOWED_HOSTS="127.0.0.1,localhost",
        SECURE_SSL_REDIRECT="off",
        CHANNEL_PREFIX=f"d{uuid.uuid4().hex[:8]}",
        DJANGO_SETTINGS_MODULE="identity_playground.settings",
        PYTHONUNBUFFERED="1",
    )
    env.update(overrides)
    return env


def run_command(command: str, env: dict[str, str], timeout: float = 120) -> str:
    """Run one shell command line in the project root as a one-off dyno would; its output."""
    result = subprocess.run(
        ["bash", "-c", command],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if result.returncode:
        raise AssertionError(
            f"{command!r} exited {result.returncode}:\n{result.stdout}{result.stderr}"
        )
    return result.stdout


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]
    body: bytes


def fetch(url: str, headers: dict[str, str] | None = None, timeout: float = 5) -> Response:
    """One GET, any status, redirects not followed."""

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: object, **kwargs: object) -> None:
            return None

    opener = urllib.request.build_opener(NoRedirect)
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with opener.open(request, timeout=timeout) as response:
            return Response(response.status, dict(response.headers), response.read())
    except urllib.error.HTTPError as exc:
        return Response(exc.code, dict(exc.headers), exc.read())


def process_group(pgid: int) -> list[int]:
    """Live (not zombie) processes whose process group is `pgid`."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid pgrp ...: comm may hold spaces, so split after its ")"
        state, _ppid, pgrp = stat.rpartition(")")[2].split()[:3]
        if int(pgrp) == pgid and state != "Z":
            members.append(int(entry.name))
    return members


class TlsRedisServer:
    """A redis-server that speaks only TLS, with a self-signed certificate (as Heroku Redis).

    Clients are not asked for certificates (`--tls-auth-clients no`), and nothing listens in
    plain text (`--port 0`).
    """

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.url = f"rediss://127.0.0.1:{self.port}"
        self.cert = workdir / "redis.crt"
        self.key = workdir / "redis.key"
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
             "-subj", "/CN=localhost", "-keyout", str(self.key), "-out", str(self.cert)],
            check=True, capture_output=True, timeout=30,
        )  # fmt: skip
        self.log = workdir / f"redis-tls-{self.port}.log"
        self.process = subprocess.Popen(
            [redis_server_binary(), "--bind", "127.0.0.1", "--port", "0",
             "--tls-port", str(self.port), "--tls-cert-file", str(self.cert),
             "--tls-key-file", str(self.key), "--tls-ca-cert-file", str(self.cert),
             "--tls-auth-clients", "no", "--save", "", "--appendonly", "no",
             "--dir", str(workdir), "--logfile", str(self.log)],
        )  # fmt: skip
        try:
            wait_until(self.answers, 10, "redis-server on TLS")
        except TimeoutError:
            self.stop()
            raise AssertionError(f"TLS redis-server did not start:\n{self.logs()}") from None

    def client(self) -> redis.Redis:
        """A redis-py client accepting the self-signed certificate, as the app's are."""
        return redis.Redis.from_url(self.url, ssl_cert_reqs=None, socket_timeout=2)

    def answers(self) -> bool:
        if self.process.poll() is not None:
            raise TimeoutError("redis-server exited")
        try:
            return bool(self.client().ping())
        except Exception:
            return False

    def logs(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(5)


@dataclass
class ProcfileWeb:
    """The Procfile's `web` process as Heroku starts it: `bash -c "<command>"` with PORT set."""

    env: dict[str, str]
    workdir: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / f"web-{self.port}.log"

    def start(self, expected_workers: int | None = None) -> ProcfileWeb:
        """Start it in a new session (its own process group) and wait for its workers."""
        command = procfile_commands()["web"]
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                ["bash", "-c", command],
                cwd=ROOT,
                env={**self.env, "PORT": str(self.port)},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        workers = expected_workers or int(self.env.get("WEB_CONCURRENCY", "2"))
        try:
            wait_until(lambda: len(self.live_workers()) >= workers, 45, f"{workers} workers")
        except TimeoutError:
            self.stop()
            raise AssertionError(f"the web process did not come up:\n{self.logs()}") from None
        return self

    def live_workers(self) -> list[dict[str, object]]:
        try:
            # as Heroku's router forwards it: /workers, like every endpoint, is redirected
            # to https when SECURE_SSL_REDIRECT is on
            response = fetch(f"{self.url}/workers", {"X-Forwarded-Proto": "https"}, timeout=3)
        except OSError:
            return []
        return json.loads(response.body) if response.status == 200 else []

    @property
    def pgid(self) -> int:
        assert self.process is not None
        return self.process.pid  # a session leader's process group id is its pid

    def terminate_like_heroku(self, within: float = 30) -> float:
        """SIGTERM to every process of the group at once; seconds until all are gone.

        Whatever is left after `within` seconds gets SIGKILL, as on Heroku.
        """
        assert self.process is not None
        started = time.monotonic()
        os.killpg(self.pgid, signal.SIGTERM)
        deadline = started + within
        while time.monotonic() < deadline:
            self.process.poll()
            if not process_group(self.pgid):
                break
            time.sleep(0.02)
        elapsed = time.monotonic() - started
        if process_group(self.pgid):
            os.killpg(self.pgid, signal.SIGKILL)
        self.process.wait(5)
        return elapsed

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.process is None:
            return
        if process_group(self.pgid):
            self.terminate_like_heroku(within=15)
        self.process.wait(5)
        self.process = None
