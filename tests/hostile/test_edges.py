"""The edges of a production cluster (DEBUG off): a WebSocket handshake on a path that
serves none is refused quietly, a browser from another origin cannot open a socket, and
Django's errors are short JSON, never a traceback or a technical page."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator

import pytest
from websockets.exceptions import InvalidStatus

from tests.hostile.clusters import SharedClusters
from tests.integration.servers import Cluster
from tests.integration.servers import http as get
from tests.integration.wire import open_raw, recv, socketio_url


@pytest.fixture(scope="module")
def cluster(hostile_clusters: SharedClusters) -> Iterator[Cluster]:
    yield from hostile_clusters.for_module("production")


def get_with_host(cluster: Cluster, path: str, host: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", cluster.port, timeout=5)
    try:
        conn.request("GET", path, headers={"Host": host})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


@pytest.mark.parametrize("path", ["/engine.io/", "/", "/users", "/socket.io/extra", "/ws"])
async def test_a_websocket_handshake_on_another_path_is_refused_quietly(
    cluster: Cluster, path: str
) -> None:
    """403 at the handshake, fifty times over, and nothing in the log above DEBUG (Channels'
    URLRouter answered 500 with a "No route found" traceback per attempt)."""
    before = len(cluster.logs())
    for _ in range(50):
        with pytest.raises(InvalidStatus) as refused:
            await open_raw(f"{cluster.ws_url}{path}?EIO=4&transport=websocket")
        assert refused.value.response.status_code == 403
    ws = await open_raw(socketio_url(cluster))  # /socket.io/ itself is served
    assert str(await recv(ws)).startswith("0{")
    await ws.close()
    assert "No route" not in cluster.logs()[before:]
    assert cluster.logs()[before:].count(path) <= 1


@pytest.mark.parametrize(
    ("origin", "accepted"),
    [
        (None, True),
        ("http://127.0.0.1:{port}", True),
        ("http://127.0.0.1:9999", False),
        ("https://127.0.0.1:{port}", False),
        ("http://localhost:{port}", False),
        ("null", False),
    ],
)
async def test_a_browser_from_another_origin_cannot_open_a_socket(
    cluster: Cluster, origin: str | None, accepted: bool
) -> None:
    """Only the page's own origin (scheme, host and port) or none at all is admitted."""
    headers = {} if origin is None else {"Origin": origin.format(port=cluster.port)}
    if accepted:
        ws = await open_raw(socketio_url(cluster), additional_headers=headers)
        assert str(await recv(ws)).startswith("0{")
        await ws.close()
    else:
        with pytest.raises(InvalidStatus) as refused:
            await open_raw(socketio_url(cluster), additional_headers=headers)
        assert refused.value.response.status_code == 403


def test_errors_are_short_json_without_a_traceback(cluster: Cluster) -> None:
    """An unknown path is 404 JSON, a foreign Host 400 JSON, each under 100 bytes."""
    status, headers, body = get(f"{cluster.url}/no/such/path")
    assert (status, headers["Content-Type"], body) == (
        404,
        "application/json",
        {"error": "Not found"},
    )
    status, content = get_with_host(cluster, "/users", "evil.example")
    assert (status, json.loads(content)) == (400, {"error": "Bad request"})
    assert len(content) < 100
