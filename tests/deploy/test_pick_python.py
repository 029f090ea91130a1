"""scripts/pick-python: the interpreter `make setup` builds .venv with."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.integration.servers import ROOT

pytestmark = pytest.mark.timeout(30)


def pick(**env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k != "PYTHON"} | env
    return subprocess.run(
        [str(ROOT / "scripts" / "pick-python")],
        env=environment,
        capture_output=True,
        text=True,
        check=False,
    )


def test_picks_a_python_311_or_newer_that_can_make_a_venv_with_pip() -> None:
    picked = pick()
    assert picked.returncode == 0, picked.stderr
    interpreter = picked.stdout.strip()
    probe = "import ensurepip, sys, venv; print(sys.version_info >= (3, 11))"
    assert (
        subprocess.run([interpreter, "-c", probe], capture_output=True, text=True).stdout
        == "True\n"
    )


def test_prefers_the_distributions_build_where_there_is_one() -> None:
    if not os.access("/usr/bin/python3.11", os.X_OK):
        pytest.skip("no /usr/bin/python3.11 here")
    usable = subprocess.run(["/usr/bin/python3.11", "-c", "import ensurepip, venv"], check=False)
    if usable.returncode != 0:
        pytest.skip("/usr/bin/python3.11 cannot make a venv with pip here")
    assert pick().stdout.strip() == "/usr/bin/python3.11"


def test_python_overrides_the_choice() -> None:
    assert pick(PYTHON=sys.executable).stdout.strip() == sys.executable


def test_an_override_that_is_no_command_is_a_clear_error() -> None:
    picked = pick(PYTHON="no-such-python")
    assert picked.returncode != 0
    assert picked.stdout == ""
    assert "PYTHON=no-such-python is not a command" in picked.stderr
