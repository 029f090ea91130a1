"""Settings come from the environment with working defaults (checked in a fresh process)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROBE = (
    "import json, identity_playground.settings as s;"
    "print(json.dumps({'debug': s.DEBUG, 'db': s.DATABASES['default'],"
    " 'layers': s.CHANNEL_LAYERS, 'hosts': s.ALLOWED_HOSTS, 'gc': s.WORKER_GC_THRESHOLDS,"
    " 'trim': s.WORKER_MALLOC_TRIM_INTERVAL},"
    " default=str))"
)


def settings_with(**env: str) -> dict:
    """The settings a fresh process reads with `env` on top of development mode (DEBUG=on,
    as `make run` and the tests set it); DEBUG= (empty) leaves DEBUG unset."""
    env = {"DEBUG": "on", **env}
    if not env["DEBUG"]:
        del env["DEBUG"]
    clean = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DEBUG", "SECRET_KEY", "DATABASE_URL", "REDIS_URL", "ALLOWED_HOSTS"}
        and not k.startswith("REDIS_TLS_")
    }
    result = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=30,
    )
    if result.returncode:
        raise RuntimeError(result.stderr)
    return json.loads(result.stdout)


def test_development_needs_nothing_but_debug_on() -> None:
    """DEBUG=on and nothing else: SQLite tuned for several processes, in-memory layer."""
    s = settings_with()
    assert s["debug"] is True
    assert s["db"]["ENGINE"] == "django.db.backends.sqlite3"
    assert s["db"]["OPTIONS"]["transaction_mode"] == "IMMEDIATE"
    assert "journal_mode=WAL" in s["db"]["OPTIONS"]["init_command"]
    assert s["layers"]["default"]["BACKEND"] == "rooms.bus.local.SingleProcessChannelLayer"


def test_postgres_database_url() -> None:
    """DATABASE_URL selects PostgreSQL with its parts."""
    db = settings_with(DATABASE_URL="postgres://u:p@db.example:5433/play")["db"]
    assert db["ENGINE"] == "django.db.backends.postgresql"
    assert (db["NAME"], db["USER"], db["HOST"], db["PORT"]) == ("play", "u", "db.example", 5433)


def test_redis_url_selects_our_layer() -> None:
    """redis:// gives the bus's layer on that address, under CHANNEL_PREFIX."""
    layer = settings_with(REDIS_URL="redis://127.0.0.1:6379/3")["layers"]["default"]
    assert layer["BACKEND"] == "rooms.bus.layer.BusChannelLayer"
    assert layer["CONFIG"] == {
        "hosts": ["redis://127.0.0.1:6379/3"],
        "prefix": "ip",
        "capacity": 1000,
        "tls_verify": True,
        "tls_ca_file": "",
    }


def test_channel_layer_backend_selects_a_channels_redis_layer() -> None:
    """CHANNEL_LAYER_BACKEND names the layer; channels_redis's get the hosts, prefix and
    capacity, not the bus's TLS options."""
    layer = settings_with(
        REDIS_URL="redis://127.0.0.1:6379/3",
        CHANNEL_LAYER_BACKEND="channels_redis.core.RedisChannelLayer",
        CHANNEL_LAYER_CAPACITY="50",
    )["layers"]["default"]
    assert layer == {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {"hosts": ["redis://127.0.0.1:6379/3"], "prefix": "ip", "capacity": 50},
    }


def test_without_redis_url_the_redis_of_a_running_make_run_is_found(tmp_path: Path) -> None:
    """runcluster writes its embedded Redis's URL to EMBEDDED_REDIS_FILE while it runs: a
    `manage.py` command of the checkout uses it; with no such file, one process alone."""
    url_file = tmp_path / "redis-url"
    url_file.write_text("redis://127.0.0.1:45678/0\n")
    layer = settings_with(EMBEDDED_REDIS_FILE=str(url_file))["layers"]["default"]
    assert layer["CONFIG"]["hosts"] == ["redis://127.0.0.1:45678/0"]
    url_file.unlink()
    layer = settings_with(EMBEDDED_REDIS_FILE=str(url_file))["layers"]["default"]
    assert layer["BACKEND"] == "rooms.bus.local.SingleProcessChannelLayer"
    assert settings_with(REDIS_URL="redis://elsewhere:6379/0", EMBEDDED_REDIS_FILE=str(url_file))[
        "layers"
    ]["default"]["CONFIG"]["hosts"] == ["redis://elsewhere:6379/0"]


def test_rediss_url_verifies_certificates_unless_told_not_to() -> None:
    """rediss:// verifies the certificate (against REDIS_TLS_CA_FILE if set); Heroku's
    self-signed ones need REDIS_TLS_VERIFY=off, which keeps TLS without the check."""
    url = "rediss://:pw@redis.example:6380"
    config = settings_with(REDIS_URL=url)["layers"]["default"]["CONFIG"]
    assert (config["tls_verify"], config["tls_ca_file"]) == (True, "")
    config = settings_with(REDIS_URL=url, REDIS_TLS_CA_FILE="/ca.pem")["layers"]["default"][
        "CONFIG"
    ]
    assert (config["tls_verify"], config["tls_ca_file"]) == (True, "/ca.pem")
    config = settings_with(REDIS_URL=url, REDIS_TLS_VERIFY="off")["layers"]["default"]["CONFIG"]
    assert config["tls_verify"] is False


def test_production_requires_secret_key() -> None:
    """DEBUG off without SECRET_KEY fails with a message naming the variable."""
    with pytest.raises(RuntimeError, match="SECRET_KEY must be set"):
        settings_with(DEBUG="off")
    assert settings_with(DEBUG="off", SECRET_KEY="x" * 50, ALLOWED_HOSTS="a.example")["hosts"] == [
        "a.example"
    ]


def test_several_redis_urls_shard_the_layer() -> None:
    """A comma-separated REDIS_URL spreads the layer over every server."""
    urls = "redis://a:6379/0, rediss://b:6380/0"
    layer = settings_with(REDIS_URL=urls, REDIS_TLS_VERIFY="off")["layers"]["default"]
    assert layer["CONFIG"]["hosts"] == ["redis://a:6379/0", "rediss://b:6380/0"]


def test_worker_gc_thresholds() -> None:
    """CPython's own thresholds unless the environment trades memory for shorter pauses."""
    assert settings_with()["gc"] == [700, 10, 10]
    assert settings_with(WORKER_GC_THRESHOLDS="7000,10,10")["gc"] == [7000, 10, 10]


def test_worker_malloc_trim_interval() -> None:
    """Every 10 s unless set; 0 turns trimming off."""
    assert settings_with()["trim"] == 10.0
    assert settings_with(WORKER_MALLOC_TRIM_INTERVAL="0")["trim"] == 0.0


def test_debug_is_off_unless_set() -> None:
    """Nothing set means production: a deploy that forgets DEBUG=off neither shows debug
    pages nor signs with the public development key (it asks for SECRET_KEY instead)."""
    with pytest.raises(RuntimeError, match="SECRET_KEY must be set"):
        settings_with(DEBUG="")
    assert settings_with(DEBUG="", SECRET_KEY="x" * 50)["debug"] is False


@pytest.mark.parametrize("command", ["runcluster --workers 1 --port 0", "migrate --noinput"])
def test_manage_py_without_secret_key_says_so_in_one_line(command: str) -> None:
    """The Procfile's commands with DEBUG unset and no SECRET_KEY exit at once with one line
    naming the variable, not a traceback."""
    unset = {"DEBUG", "SECRET_KEY", "DJANGO_SETTINGS_MODULE"}  # as the Procfile runs them
    clean = {k: v for k, v in os.environ.items() if k not in unset}
    result = subprocess.run(
        [sys.executable, "manage.py", *command.split()],
        cwd=ROOT,
        env=clean,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("manage.py: SECRET_KEY must be set when DEBUG is off")
