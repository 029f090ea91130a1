"""Each log record is written once: Django's own `django` console handler (DEBUG on) and
the root handler of settings.LOGGING must not both print it."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.integration.servers import Cluster, http, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


@pytest.mark.parametrize("debug", ["on", "off"])
def test_a_404_warning_appears_once_in_the_cluster_log(
    debug: str, start_cluster: Callable[..., Cluster]
) -> None:
    """GET /users/42 (no such user) logs `Not Found: /users/42` exactly once. One worker
    serves both requests and writes a record's lines before answering, so once the second
    request's line is in the log every line of the first one is too."""
    production = {
        "SECRET_KEY": "x" * 50,
        "SECURE_SSL_REDIRECT": "off",
        "ALLOWED_HOSTS": "127.0.0.1",
    }
    extra = {} if debug == "on" else production
    cluster = start_cluster(workers=1, DEBUG=debug, **extra)
    assert http(f"{cluster.url}/users/42")[0] == 404
    assert http(f"{cluster.url}/users/43")[0] == 404
    wait_until(lambda: "Not Found: /users/43" in cluster.logs(), 10, "the second 404 logged")
    lines = [line for line in cluster.logs().splitlines() if "Not Found: /users/42" in line]
    assert len(lines) == 1, lines
    assert lines[0].endswith("WARNING django.request: Not Found: /users/42")
