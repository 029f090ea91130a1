"""Production settings: `check --deploy` is clean, secure by default, each switch env-tunable."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.deploy.processes import production_env
from tests.integration.servers import ROOT

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

SECURITY_SETTINGS = (
    "SECURE_PROXY_SSL_HEADER", "SECURE_SSL_REDIRECT", "SESSION_COOKIE_SECURE",
    "CSRF_COOKIE_SECURE", "SECURE_HSTS_SECONDS", "SECURE_HSTS_INCLUDE_SUBDOMAINS",
    "SECURE_HSTS_PRELOAD",
)  # fmt: skip
PROBE = (
    "import json, identity_playground.settings as s;"
    f"print(json.dumps({{n: getattr(s, n) for n in {SECURITY_SETTINGS!r}}}))"
)


def heroku_env(**overrides: str) -> dict[str, str]:
    """A production dyno's environment as app.json sets it: no local-HTTP switches."""
    env = production_env(ALLOWED_HOSTS="playground.example", **overrides)
    if "SECURE_SSL_REDIRECT" not in overrides:
        del env["SECURE_SSL_REDIRECT"]
    return env


def check_deploy(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )


def security_settings(env: dict[str, str]) -> dict[str, object]:
    result = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout))


def test_check_deploy_reports_nothing_in_production() -> None:
    """DEBUG off, a 50+ character SECRET_KEY and ALLOWED_HOSTS: not even a warning."""
    result = check_deploy(heroku_env())
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout + result.stderr


def test_check_deploy_notices_a_switch_turned_off() -> None:
    """The check is live: turning the HTTPS redirect off (as local runs do) is reported."""
    result = check_deploy(heroku_env(SECURE_SSL_REDIRECT="off"))
    assert result.returncode != 0
    assert "security.W008" in result.stderr


def test_production_is_secure_by_default() -> None:
    """DEBUG off alone turns on the proxy header, redirect, secure cookies and HSTS."""
    assert security_settings(heroku_env()) == {
        "SECURE_PROXY_SSL_HEADER": ["HTTP_X_FORWARDED_PROTO", "https"],
        "SECURE_SSL_REDIRECT": True,
        "SESSION_COOKIE_SECURE": True,
        "CSRF_COOKIE_SECURE": True,
        "SECURE_HSTS_SECONDS": 3600,
        "SECURE_HSTS_INCLUDE_SUBDOMAINS": True,
        "SECURE_HSTS_PRELOAD": True,
    }


def test_development_leaves_them_off() -> None:
    """DEBUG on: plain HTTP keeps working, no HSTS is sent, cookies are not secure-only."""
    env = production_env(DEBUG="on")
    del env["SECURE_SSL_REDIRECT"]
    assert security_settings(env) == {
        "SECURE_PROXY_SSL_HEADER": None,
        "SECURE_SSL_REDIRECT": False,
        "SESSION_COOKIE_SECURE": False,
        "CSRF_COOKIE_SECURE": False,
        "SECURE_HSTS_SECONDS": 0,
        "SECURE_HSTS_INCLUDE_SUBDOMAINS": False,
        "SECURE_HSTS_PRELOAD": False,
    }


def test_each_setting_follows_its_variable() -> None:
    """Every switch can be set on its own through the environment, either way."""
    off = heroku_env(
        SECURE_PROXY_SSL_HEADER="off", SECURE_SSL_REDIRECT="off", SESSION_COOKIE_SECURE="off",
        CSRF_COOKIE_SECURE="off", SECURE_HSTS_SECONDS="31536000",
        SECURE_HSTS_INCLUDE_SUBDOMAINS="off", SECURE_HSTS_PRELOAD="off",
    )  # fmt: skip
    assert security_settings(off) == {
        "SECURE_PROXY_SSL_HEADER": None,
        "SECURE_SSL_REDIRECT": False,
        "SESSION_COOKIE_SECURE": False,
        "CSRF_COOKIE_SECURE": False,
        "SECURE_HSTS_SECONDS": 31536000,
        "SECURE_HSTS_INCLUDE_SUBDOMAINS": False,
        "SECURE_HSTS_PRELOAD": False,
    }
    on = security_settings(
        production_env(DEBUG="on", SECURE_SSL_REDIRECT="on", SECURE_HSTS_SECONDS="60")
    )
    assert (on["SECURE_SSL_REDIRECT"], on["SECURE_HSTS_SECONDS"]) == (True, 60)
