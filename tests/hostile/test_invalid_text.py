r"""Lone surrogates ("\ud800", valid JSON but no UTF-8 text) in every place a client puts
text: each is refused where the client waits for an answer (CONNECT_ERROR, a
`{"ok": false}` ack, an `error` event, a 400 JSON), the socket keeps its connection and
its rooms, and nothing reaches the log at ERROR. They used to pass validation and then
raise UnicodeEncodeError when sent: close 1011 and a traceback per frame, the socket left
in the roster until its ping timed out, an identity-change acked ok and dropped.
"""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator

import pytest

from tests.hostile.clusters import SharedClusters
from tests.hostile.harm import Unharmed, call, pair_on_two_workers
from tests.integration.servers import Cluster, http
from tests.integration.wire import engineio_open, recv_packet, socketio_connect

REFUSAL = "invalid Unicode in the payload (a lone surrogate)"
REPEAT = 30  # each bad frame, paced under SOCKETIO_FRAME_RATE


@pytest.fixture(scope="module")
def cluster(hostile_clusters: SharedClusters) -> Iterator[Cluster]:
    yield from hostile_clusters.for_module("development")


@pytest.mark.parametrize(
    "event",
    [
        '["\\ud800"]',  # the event name
        '["join","room-\\ud800"]',
        '["leave","\\udfff"]',
        '["identity-change",{"name":"Jo\\ud800"}]',
        '["identity-change",{"\\ud800":"key"}]',
        '["x",["deep",["\\ud83d"]]]',
    ],
    ids=["event name", "join", "leave", "identity-change", "a key", "nested"],
)
async def test_an_event_with_a_lone_surrogate_is_refused_in_its_ack(
    cluster: Cluster, event: str
) -> None:
    """Acked {"ok": false} REPEAT times (an `error` event without an ack id); the sender
    stays connected and in its room, its peers on both workers hear nothing of it, and
    when it leaves they are told at once."""
    room = f"text-{uuid.uuid4().hex[:8]}"
    first, second = await pair_on_two_workers(cluster, room)
    ws, sid, _ = await socketio_connect(cluster, id_user="3", room=room)
    try:
        for peer in (first, second):
            await peer.wait_for("socket-connected", lambda s: s == sid)
        watch = Unharmed(cluster, room, [first.sid, second.sid, sid])
        async with watch.watching():
            for i in range(REPEAT):
                await ws.send(f"42{i}{event}")
                assert await recv_packet(ws) == f"43{i}" + json.dumps(
                    [{"ok": False, "error": REFUSAL}], separators=(",", ":")
                )
                await asyncio.sleep(0.03)
            await ws.send(f"42{event}")
            assert json.loads((await recv_packet(ws))[2:]) == ["error", {"message": REFUSAL}]
            assert await call(ws, 500, "identity-change", {"name": "ok"}) == {"ok": True}
            for peer in (first, second):
                await peer.wait_for("identity-change", lambda p: p.get("name") == "ok")
                assert [p for p in peer.payloads("identity-change") if p.get("name") != "ok"] == []
    finally:
        await ws.close()
    for peer in (first, second):
        await peer.wait_for("socket-disconnected", lambda s: s == sid, within=10)
    await first.close()
    await second.close()


@pytest.mark.parametrize(
    "connect",
    ['40{"id_user":"\\ud800"}', '40{"id_user":"1","room":"\\udc00"}', '40{"\\ud800":1}'],
    ids=["id_user", "room", "a key"],
)
async def test_a_connect_with_a_lone_surrogate_gets_connect_error(
    cluster: Cluster, connect: str
) -> None:
    """CONNECT_ERROR with the reason, nothing registered; the same connection then connects
    with valid text."""
    ws, _ = await engineio_open(cluster)
    try:
        await ws.send(connect)
        assert json.loads((await recv_packet(ws))[2:]) == {"message": REFUSAL}
        await ws.send('40{"id_user":"1"}')
        assert (await recv_packet(ws)).startswith('40{"sid":')
    finally:
        await ws.close()


@pytest.mark.parametrize(
    "raw_name", ['"\\ud800"', '"Jo\\udfffhn"', '"Jo\\u0000hn"', '"a\\u001bb"'],
    ids=["lone high surrogate", "lone low surrogate", "NUL", "ESC"],
)  # fmt: skip
def test_a_put_with_a_name_that_is_not_text_gets_400_json(cluster: Cluster, raw_name: str) -> None:
    """400 with a JSON error, never a 500, and the name is unchanged (on PostgreSQL too:
    tests/users/test_plain_text_names.py runs on both databases)."""
    body = f'{{"name": {raw_name}}}'.encode()
    for _ in range(5):
        request = urllib.request.Request(
            f"{cluster.url}/users/4", data=body, method="PUT",
            headers={"Content-Type": "application/json"},
        )  # fmt: skip
        try:
            urllib.request.urlopen(request, timeout=5)
        except urllib.error.HTTPError as exc:
            assert exc.code == 400
            assert "error" in json.loads(exc.read())
        else:
            raise AssertionError("accepted")
    assert http(f"{cluster.url}/users/4")[2]["name"] == "Frank"
