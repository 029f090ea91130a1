"""Each log record is written once: Django's own `django` console handler (DEBUG on) and
the root handler of settings.LOGGING must not both print it; with LOG_FORMAT=json, as one
JSON object naming its worker."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from tests.integration.servers import Cluster, http, wait_until
from tests.integration.wire import closed_by_server, engineio_open

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


async def test_json_log_lines_name_their_worker_and_socket(
    start_cluster: Callable[..., Cluster],
) -> None:
    """LOG_FORMAT=json: each line a worker writes (after runcluster's `[w0 <pid>] ` prefix)
    is one JSON object with its time, level, logger, message and the worker's procid; a
    record about a socket names it, and a 404 stays one line."""
    cluster = start_cluster(workers=1, LOG_FORMAT="json")
    procid = cluster.live_workers()[0]["procid"]
    assert http(f"{cluster.url}/users/42")[0] == 404
    ws, _ = await engineio_open(cluster, id_user="1")
    await ws.send("4abc")  # a protocol error: the worker closes it, saying why
    await closed_by_server(ws, within=10)
    wait_until(lambda: "closing" in cluster.logs(), 10, "the closing logged")
    records = [
        json.loads(line.split("] ", 1)[1])
        for line in cluster.logs().splitlines()
        if line.startswith("[w0 ")
    ]
    assert records and all(
        {"time", "level", "logger", "message", "procid"} <= set(r) for r in records
    ), records
    assert {r["procid"] for r in records if r["message"].startswith("Not Found")} == {procid}
    (closing,) = [r for r in records if r["message"].startswith("closing")]
    assert closing["level"] == "INFO" and closing["socket"] in closing["message"]
    assert [r["message"] for r in records if "users/42" in r["message"]] == ["Not Found: /users/42"]
