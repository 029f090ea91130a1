"""The Procfile's processes, started exactly as Heroku starts them, on production settings.

The release command and the one-off seed run first, then `collectstatic` (Heroku's build
step); then the `web` line runs through `bash -c` with PORT set, DEBUG off, the database of
DATABASE_URL and a TLS-only Redis with a self-signed certificate at REDIS_URL. Plain HTTP
(there is no TLS router in front), so SECURE_SSL_REDIRECT is off except where said.

What needs no particular database (the router, Host, static files, Socket.IO) runs on a
dyno with an SQLite file, so a missing PostgreSQL fails only the tests that need it: the
PostgreSQL dyno's writes, and its /healthz while the database refuses it.
"""

from __future__ import annotations

import asyncio
import json
import re
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.deploy.processes import (
    ProcfileWeb,
    TlsRedisServer,
    fetch,
    procfile_commands,
    production_env,
    run_command,
)
from tests.integration.recording import Client, close_all
from tests.integration.servers import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

# What Heroku's router adds to every request it forwards from https://
ROUTER_HEADERS = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9"}
HASHED = r"[0-9a-f]{12}"


def build_dyno_env(
    database_url: str, tls_redis: TlsRedisServer, static_root: Path
) -> dict[str, str]:
    """A production environment, its database migrated and seeded, its static files built."""
    env = production_env(
        DATABASE_URL=database_url,
        REDIS_URL=tls_redis.url,
        WEB_CONCURRENCY="2",
        STATIC_ROOT=str(static_root),
    )
    run_command(procfile_commands()["release"], env)
    run_command("python manage.py reset_db", env)
    run_command("python manage.py collectstatic --noinput", env)
    return env


@pytest.fixture(scope="module")
def dyno_env(tls_redis: TlsRedisServer, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A production environment on an SQLite file, for what needs no particular database."""
    workdir = tmp_path_factory.mktemp("dyno-sqlite")
    return build_dyno_env(f"sqlite:///{workdir / 'db.sqlite3'}", tls_redis, workdir / "static")


@pytest.fixture(scope="module")
def postgres_dyno_env(
    postgres_url: str, tls_redis: TlsRedisServer, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, str]:
    """A production environment on a PostgreSQL database of its own, as app.json asks."""
    return build_dyno_env(postgres_url, tls_redis, tmp_path_factory.mktemp("static-postgres"))


def start_web(env: dict[str, str], workdir: Path) -> Iterator[ProcfileWeb]:
    dyno = ProcfileWeb(env, workdir).start()
    yield dyno
    dyno.stop()
    print(f"---- web :{dyno.port} log ----\n{dyno.logs()[-4000:]}")


@pytest.fixture(scope="module")
def web(
    dyno_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ProcfileWeb]:
    yield from start_web(dyno_env, tmp_path_factory.mktemp("web"))


@pytest.fixture(scope="module")
def postgres_web(
    postgres_dyno_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ProcfileWeb]:
    yield from start_web(postgres_dyno_env, tmp_path_factory.mktemp("web-postgres"))


def test_procfile_runs_runcluster_behind_the_router_and_migrates_on_release() -> None:
    """web: WEB_CONCURRENCY daphne workers on 0.0.0.0:$PORT trusting proxy headers."""
    commands = procfile_commands()
    assert commands["release"] == "python manage.py migrate --noinput"
    web_command = commands["web"].split()
    assert web_command[:3] == ["python", "manage.py", "runcluster"]
    assert "--proxy-headers" in web_command
    for flag, value in (("--workers", "${WEB_CONCURRENCY:-2}"), ("--host", "0.0.0.0"),
                        ("--port", "$PORT")):  # fmt: skip
        assert web_command[web_command.index(flag) + 1] == value


def test_health_users_and_workers(web: ProcfileWeb) -> None:
    """/healthz is 200 with both checks, /users lists the ten seeds, /workers the 2 workers."""
    health = fetch(f"{web.url}/healthz")
    assert (health.status, json.loads(health.body)) == (
        200,
        {"ok": True, "database": True, "channel_layer": True},
    )
    users = fetch(f"{web.url}/users")
    assert users.status == 200
    assert [u["name"] for u in json.loads(users.body)][:3] == ["John", "Mary", "Mike"]
    assert len(json.loads(users.body)) == 10
    assert len(web.live_workers()) == 2


def test_workers_write_to_postgresql(
    postgres_web: ProcfileWeb, postgres_dyno_env: dict[str, str]
) -> None:
    """A rename through the API lands in the PostgreSQL database of DATABASE_URL."""
    request = urllib.request.Request(
        f"{postgres_web.url}/users/10",
        data=json.dumps({"name": "Vicky"}).encode(),
        method="PUT",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.status == 204
    with psycopg.connect(postgres_dyno_env["DATABASE_URL"], connect_timeout=3) as conn:
        row = conn.execute("SELECT name FROM users_playgrounduser WHERE id = 10").fetchone()
    assert row == ("Vicky",)


def health(web: ProcfileWeb) -> tuple[int, object]:
    response = fetch(f"{web.url}/healthz")
    return response.status, json.loads(response.body)


def test_healthz_is_503_while_the_database_refuses(
    postgres_web: ProcfileWeb, postgres_dyno_env: dict[str, str]
) -> None:
    """PostgreSQL cuts the workers' connections and refuses new ones (as when it is down or
    restarting): /healthz answers 503 `"database": false` while Redis is
    fine; once it accepts them again, 200 without restarting anything."""
    database_url = postgres_dyno_env["DATABASE_URL"]
    name = database_url.rsplit("/", 1)[1]
    admin_url = database_url.rsplit("/", 1)[0] + "/postgres"
    down = (503, {"ok": False, "database": False, "channel_layer": True})
    up = (200, {"ok": True, "database": True, "channel_layer": True})
    assert health(postgres_web) == up
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=3) as admin:
        admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        try:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (name,),
            )
            # each request lands on either worker (the kernel's choice): several in a row
            # show both workers; each worker's kept connection (CONN_MAX_AGE) is dead
            wait_until(lambda: health(postgres_web) == down, 10, "/healthz 503")
            assert [health(postgres_web) for _ in range(8)] == [down] * 8
        finally:
            admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
    wait_until(lambda: health(postgres_web) == up, 10, "/healthz 200 again")
    assert [health(postgres_web) for _ in range(8)] == [up] * 8


def test_admin_css_is_served_under_hashed_names(web: ProcfileWeb) -> None:
    """The login page links hashed CSS that whitenoise serves, cacheable forever, gzipped."""
    login = fetch(f"{web.url}/admin/login/")
    assert login.status == 200
    css_urls = re.findall(rf'href="(/static/admin/css/[\w.]+\.{HASHED}\.css)"', login.body.decode())
    assert "/static/admin/css/base" in " ".join(css_urls), login.body.decode()[:2000]
    for url in css_urls:
        css = fetch(f"{web.url}{url}", headers={"Accept-Encoding": "gzip"})
        assert css.status == 200, url
        assert css.headers["Content-Type"].startswith("text/css")
        assert "immutable" in css.headers["Cache-Control"]
        assert css.headers.get("Content-Encoding") == "gzip"


def test_room_page_and_its_vendored_client(web: ProcfileWeb) -> None:
    """/ui/<room> renders with DEBUG off and its Socket.IO client has a hashed URL that loads."""
    page = fetch(f"{web.url}/ui/lobby?id_user=1")
    assert page.status == 200
    scripts = re.findall(rf'src="(/static/[\w./-]+\.{HASHED}\.js)"', page.body.decode())
    assert any("vendor/socket.io/socket.io.min." in s for s in scripts), scripts
    for url in scripts:
        assert fetch(f"{web.url}{url}").status == 200, url


def test_host_header_is_checked(web: ProcfileWeb) -> None:
    """A Host outside ALLOWED_HOSTS is refused with 400."""
    assert fetch(f"{web.url}/users", headers={"Host": "evil.example"}).status == 400


def test_https_through_the_router(dyno_env: dict[str, str], tmp_path: Path) -> None:
    """With the redirect on: http is sent to https; a request the router forwarded from
    https is served, with HSTS, and is not redirected again."""
    env = {**dyno_env, "WEB_CONCURRENCY": "1", "SECURE_SSL_REDIRECT": "on"}
    dyno = ProcfileWeb(env, tmp_path).start()
    try:
        plain = fetch(f"{dyno.url}/users")
        assert plain.status == 301
        assert plain.headers["Location"] == f"https://127.0.0.1:{dyno.port}/users"
        routed = fetch(f"{dyno.url}/users", headers=ROUTER_HEADERS)
        assert routed.status == 200
        assert routed.headers["Strict-Transport-Security"] == (
            "max-age=3600; includeSubDomains; preload"
        )
    finally:
        dyno.stop()


async def test_socketio_round_trip(web: ProcfileWeb) -> None:
    """python-socketio connects as user 1 in a room, gets its handshake, shows in the roster."""
    client = await Client().connect(web.url, "1", "deploy-room")
    try:
        procids = {str(w["procid"]) for w in await asyncio.to_thread(web.live_workers)}
        assert client.procid in procids
        roster = await asyncio.to_thread(fetch, f"{web.url}/deploy-room/users?hydrate=1")
        assert roster.status == 200
        assert [(e["id_socket"], e["data"]) for e in json.loads(roster.body)] == [
            (client.sid, {"name": "John"})
        ]
    finally:
        await close_all([client])
