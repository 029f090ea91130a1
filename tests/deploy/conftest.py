"""Fixtures for the production tests: TLS Redis, PostgreSQL, the Procfile's processes."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator

import psycopg
import pytest

from tests.deploy.processes import TlsRedisServer
from tests.integration.servers import ROOT, RedisServer

pytestmark = pytest.mark.integration

# The server scripts/ensure-postgres looks after; `postgres` may create databases there.
POSTGRES_SERVER = "postgres://postgres@127.0.0.1:5432"


@pytest.fixture(scope="session")
def tls_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsRedisServer]:
    """A TLS-only Redis with a self-signed certificate, like Heroku Redis."""
    server = TlsRedisServer(tmp_path_factory.mktemp("redis-tls"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def plain_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A private plain-text Redis; tests keep apart by channel prefix."""
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def postgres_server() -> str:
    """A PostgreSQL that answers (started by scripts/ensure-postgres if installed), else skip."""
    ensure = subprocess.run(
        ["bash", "scripts/ensure-postgres"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert ensure.returncode == 0, (
        f"scripts/ensure-postgres failed:\n{ensure.stdout}{ensure.stderr}"
    )
    try:
        psycopg.connect(f"{POSTGRES_SERVER}/postgres", connect_timeout=3).close()
    except psycopg.OperationalError as exc:
        pytest.skip(
            f"no PostgreSQL at {POSTGRES_SERVER} (scripts/ensure-postgres: "
            f"{(ensure.stdout + ensure.stderr).strip() or 'no output'}; {exc})".replace("\n", " ")
        )
    return POSTGRES_SERVER


@pytest.fixture(scope="module")
def postgres_url(postgres_server: str) -> Iterator[str]:
    """DATABASE_URL of a fresh, empty PostgreSQL database of this module, dropped afterwards."""
    name = f"ip_deploy_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(f"{postgres_server}/postgres", autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    yield f"{postgres_server}/{name}"
    with psycopg.connect(f"{postgres_server}/postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
