"""`manage.py runcluster` on a port another process listens on: one line, no traceback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from tests.integration.servers import ROOT

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


@pytest.mark.parametrize("workers", ["1", "2"])
def test_port_in_use_is_one_line_and_a_failure(workers: str) -> None:
    """runcluster prints `runcluster: port P on HOST is already in use` and nothing else,
    exits non-zero, and starts nothing (with 2 workers and no REDIS_URL it would otherwise
    start an embedded Redis first)."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
        result = subprocess.run(
            [sys.executable, "manage.py", "runcluster", "--workers", workers,
             "--host", "127.0.0.1", "--port", str(port)],
            cwd=ROOT, env={**env, "DJANGO_SETTINGS_MODULE": "identity_playground.settings"},
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
    assert result.returncode != 0
    assert result.stdout == ""
    assert result.stderr == f"runcluster: port {port} on 127.0.0.1 is already in use\n"
