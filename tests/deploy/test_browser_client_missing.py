"""A build without the Node.js buildpack fails loudly instead of deploying broken room pages.

The room page loads the Socket.IO browser client from node_modules/socket.io-client (see
STATICFILES_DIRS). Heroku's Python buildpack runs `collectstatic --noinput` and fails the
build when it exits non-zero; `collectstatic` runs the system checks tagged `staticfiles`,
so an error there stops the deploy. Without it the build succeeds and, with DEBUG off,
every room page answers 500 (the manifest has no entry for the client).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.deploy.processes import production_env
from tests.integration.servers import ROOT

pytestmark = pytest.mark.timeout(120)

# What a checkout holds before `npm ci` and `pip install`: no node_modules, no build output.
NOT_IN_A_FRESH_CHECKOUT = shutil.ignore_patterns(
    ".git", ".venv", "node_modules", "staticfiles", "__pycache__", "*_cache", "db.sqlite3*", ".env"
)


@pytest.fixture(scope="module")
def checkout_without_node(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the project as the Python buildpack sees it when the Node one did not run."""
    copy = tmp_path_factory.mktemp("slug") / "app"
    shutil.copytree(ROOT, copy, ignore=NOT_IN_A_FRESH_CHECKOUT, symlinks=True)
    assert not (copy / "node_modules").exists()
    return copy


def manage(checkout: Path, *args: str, static_root: Path) -> subprocess.CompletedProcess[str]:
    env = production_env(STATIC_ROOT=str(static_root))
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=checkout,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_collectstatic_fails_and_says_how_to_fix_it(
    checkout_without_node: Path, tmp_path: Path
) -> None:
    """`collectstatic --noinput` with DEBUG off and no node_modules exits non-zero, naming the
    missing client and the fix (npm ci / the Node.js buildpack), and writes no manifest."""
    result = manage(checkout_without_node, "collectstatic", "--noinput", static_root=tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "rooms.E001" in output, output
    assert "vendor/socket.io/socket.io.min.js" in output
    assert "npm ci" in output and "heroku/nodejs" in output
    assert not (tmp_path / "staticfiles.json").exists()


def test_check_deploy_fails_too(checkout_without_node: Path, tmp_path: Path) -> None:
    """`manage.py check --deploy` (a pre-deploy gate) reports the same error."""
    result = manage(checkout_without_node, "check", "--deploy", static_root=tmp_path)
    assert result.returncode != 0
    assert "rooms.E001" in result.stdout + result.stderr


def test_with_node_modules_collectstatic_succeeds(tmp_path: Path) -> None:
    """The same build in the real checkout (node_modules installed) passes and lists the
    client in the manifest, so the check cannot fail a good build."""
    result = manage(ROOT, "collectstatic", "--noinput", static_root=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "vendor/socket.io/socket.io.min.js" in (tmp_path / "staticfiles.json").read_text()


def test_app_json_installs_node_modules_before_the_python_build() -> None:
    """The Deploy to Heroku button (app.json) runs the Node.js buildpack (npm ci) before the
    Python one (collectstatic), provisions PostgreSQL and Redis, generates SECRET_KEY, keeps
    DEBUG off, and sends the user to the landing page."""
    app = json.loads((ROOT / "app.json").read_text())
    assert [b["url"] for b in app["buildpacks"]] == ["heroku/nodejs", "heroku/python"]
    assert {addon.split(":")[0] for addon in app["addons"]} == {
        "heroku-postgresql",
        "heroku-redis",
    }
    assert app["env"]["SECRET_KEY"]["generator"] == "secret"
    assert app["env"]["DEBUG"]["value"] == "off"
    assert app["env"]["ALLOWED_HOSTS"]["value"]
    assert app["success_url"] == "/ui/"
