"""The official clients with their default transports (HTTP long-polling, then the upgrade to
WebSocket) and with polling only, over 4 workers sharing one port, with no sticky sessions
(issue 32).

The kernel hands each TCP connection to whichever worker accepts it first, so the GETs, POSTs
and the upgrade of one Engine.IO session land on any of the 4 workers, and the worker that
owns the session has to be reached from there. Every test uses rooms of its own (a uuid
suffix), so tests sharing the module's cluster cannot see each other's sockets.
"""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest

from tests.integration.conftest import module_cluster
from tests.integration.recording import Client, close_all
from tests.integration.servers import Cluster, RedisServer
from tests.integration.test_clients import (
    check_scenario,
    exchange_binary,
    live_procids,
    needs_node,
    new_room,
    node_lines,
    python_beside_node,
    run_node,
)
from tests.integration.test_cluster import scrape
from tests.integration.wire import roster, rosters_empty

pytestmark = [pytest.mark.integration, pytest.mark.daphne]

POLLING_ONLY = ("polling",)
SESSION_ID_UNKNOWN = {"code": 1, "message": "Session ID unknown"}  # engine.io's Server.errors


@pytest.fixture(scope="module")
def cluster(
    redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    """4 workers on one port, shared by the tests of this module."""
    yield from module_cluster(4, redis_server, tmp_path_factory)


def stamped(entries: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """A roster as sorted (id_socket, id_user) pairs."""
    return sorted((e["id_socket"], e["id_user"]) for e in entries)


# ---- socket.io-client (Node) ----------------------------------------------------------


@needs_node
@pytest.mark.parametrize(
    ("transports", "upgrades", "final"),
    [("default", ["websocket"], "websocket"), ("polling", [], "polling")],
)
async def test_node_client_scenario(
    cluster: Cluster, transports: str, upgrades: list[str], final: str
) -> None:
    """socket.io-client with its default options and with `transports: ["polling"]` runs the
    scenario it runs over WebSocket: query and auth connects, handshake, join acks,
    socket-connected / socket-disconnected, identity-change stamped with the sender's
    id_user, our connect_error message for an unknown id_user, and no disconnect but its own.

    With the defaults each engine upgrades once, to WebSocket, and the socket keeps the id it
    connected with: the other socket saw it arrive and leave under that id, the second time
    after the upgrade (a session rebuilt by the upgrade would show up as a second arrival or
    departure, or a departure under another id). With polling only there is no upgrade."""
    room = new_room(f"node-{transports}")
    process = await run_node("scenario", cluster.url, room, transports=transports)
    (result,) = await node_lines(process)
    await check_scenario(cluster, result)
    a, b = result["a"], result["b"]
    for socket in (a, b):
        assert socket["upgrades"] == upgrades, socket
        assert socket["transport"] == final, socket
        assert socket["disconnectReasons"] == ["io client disconnect"], socket
        if upgrades:
            assert socket["idAfterUpgrade"] == socket["id"], socket
    await rosters_empty(cluster, [room, room + "-other"])


@needs_node
async def test_binary_identity_change_between_polling_node_and_default_python(
    cluster: Cluster,
) -> None:
    """socket.io-client over polling only and python-socketio with its default transports
    share a room: both appear in its roster with their id_user, and each receives the other's
    identity-change holding binary data (a Buffer sent as a binary event whose attachment
    travels as `b` + base64 in a polling body; bytes sent over the Python client's upgraded
    WebSocket) as binary data, stamped with the sender's id_user."""
    room = new_room("binary-polling")
    async with python_beside_node(
        cluster, "binary", room, transports="polling", py_transports=None
    ) as (py, node, ready):
        assert py.sio.transport() == "websocket"
        assert stamped(await roster(cluster, room)) == sorted([(py.sid, "3"), (ready["id"], "4")])
        result = await exchange_binary(py, node)
        assert (result["upgrades"], result["transport"]) == ([], "polling")
        assert py.connect_errors == []


# ---- python-socketio --------------------------------------------------------------------


async def test_python_client_with_default_transports(cluster: Cluster) -> None:
    """python-socketio's AsyncClient with no `transports` (a polling handshake, then the
    upgrade to WebSocket) beside a polling-only one: both connect, the server announces and
    lists each under the socket id the client holds, join acks come back, identity-change
    crosses both ways once, as text and with bytes, stamped with the sender's id_user; the
    default client ends on WebSocket, the other stays on polling, and each leaves the
    rosters when it disconnects."""
    room, other = new_room("py-default"), new_room("py-default-other")
    polling, default = Client(), Client()
    try:
        await polling.connect(cluster.url, "2", room, transports=POLLING_ONLY)
        await default.connect(cluster.url, "1", room, transports=None)
        assert default.sio.transport() == "websocket"
        assert polling.sio.transport() == "polling"
        procids = await live_procids(cluster)
        assert {default.procid, polling.procid} <= procids
        assert await polling.next("socket-connected") == default.sid
        assert stamped(await roster(cluster, room)) == sorted(
            [(default.sid, "1"), (polling.sid, "2")]
        )

        assert await default.call("join", other) == {"ok": True}
        assert await polling.call("join", other) == {"ok": True}
        assert await default.next("socket-connected") == polling.sid

        await default.sio.emit("identity-change", {"name": "Johnny", "id_user": "7"})
        assert await polling.next("identity-change") == {"name": "Johnny", "id_user": "1"}
        await polling.sio.emit("identity-change", {"name": "Maria", "id_user": "1"})
        assert await default.next("identity-change") == {"name": "Maria", "id_user": "2"}
        await default.sio.emit("identity-change", {"name": "J", "avatar": b"\x00\xff"})
        assert await polling.next("identity-change") == {
            "name": "J",
            "avatar": b"\x00\xff",
            "id_user": "1",
        }
        await polling.sio.emit("identity-change", {"name": "M", "avatar": b"\xfe\x01"})
        assert await default.next("identity-change") == {
            "name": "M",
            "avatar": b"\xfe\x01",
            "id_user": "2",
        }
        # Both share two rooms. A room's events reach each worker in order on one channel, so
        # a second copy of any event above would arrive before these markers do.
        await default.sio.emit("identity-change", {"name": "marker-default"})
        assert await polling.next("identity-change") == {"name": "marker-default", "id_user": "1"}
        await polling.sio.emit("identity-change", {"name": "marker-polling"})
        assert await default.next("identity-change") == {"name": "marker-polling", "id_user": "2"}

        assert default.sio.transport() == "websocket"
        assert polling.sio.transport() == "polling"
        default_sid = default.sid
        await default.close()
        assert await polling.next("socket-disconnected") == default_sid
        assert [e["id_socket"] for e in await roster(cluster, room)] == [polling.sid]
        assert default.connect_errors == polling.connect_errors == []
    finally:
        await close_all([default, polling])
    await rosters_empty(cluster, [room, other])


def forwarded(cluster: Cluster) -> float:
    """Polling requests that landed on a worker other than their session's, summed over the
    workers as GET /metrics counts them."""
    family = scrape(cluster)["identity_playground_polling_requests"]
    return sum(
        sample.value
        for sample in family.samples
        if sample.name.endswith("_total") and sample.labels["served"] == "forwarded"
    )


async def test_polling_clients_whose_requests_cross_workers(cluster: Cluster) -> None:
    """Twelve polling-only python-socketio clients in one room, every HTTP request of theirs
    on a connection of its own, which the kernel gives to any of the 4 workers: some land
    off their session's worker and are forwarded, and still the roster lists each socket
    exactly once with its id_user, one identity-change reaches the eleven others exactly
    once, and the roster empties when they disconnect."""
    room = new_room("crowd")
    forwarded_at_start = await asyncio.to_thread(forwarded, cluster)
    users = [str(i % 10 + 1) for i in range(12)]
    # force_close: no keep-alive, so no request follows an earlier one to the same worker
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http:
        clients = [Client(http_session=http) for _ in users]
        try:
            await asyncio.gather(
                *(
                    client.connect(cluster.url, user, room, transports=POLLING_ONLY)
                    for client, user in zip(clients, users, strict=True)
                )
            )
            assert {c.sio.transport() for c in clients} == {"polling"}
            assert stamped(await roster(cluster, room)) == sorted(
                (c.sid, user) for c, user in zip(clients, users, strict=True)
            )

            sender, *others = clients
            await sender.sio.emit("identity-change", {"name": "crowd"})
            # then a marker: a second copy of "crowd" would reach a client before it does
            await sender.sio.emit("identity-change", {"name": "crowd-marker"})
            for client in others:
                assert await client.next("identity-change") == {"name": "crowd", "id_user": "1"}
                assert await client.next("identity-change") == {
                    "name": "crowd-marker",
                    "id_user": "1",
                }
            assert sender.payloads("identity-change") == []  # never echoed to the sender
            assert all(c.connect_errors == [] for c in clients)
            assert await asyncio.to_thread(forwarded, cluster) > forwarded_at_start
        finally:
            await close_all(clients)
        await rosters_empty(cluster, [room])


# ---- bad input over plain HTTP ----------------------------------------------------------


def polling_url(cluster: Cluster, **query: str) -> str:
    params = {"EIO": "4", "transport": "polling", **query}
    return f"{cluster.url}/socket.io/?{urllib.parse.urlencode(params)}"


def plain(url: str, method: str = "GET", body: bytes | None = None) -> tuple[int, str]:
    """One request, on a connection of its own (urllib keeps none): (status, body text)."""
    request = urllib.request.Request(
        url, data=body, method=method, headers={"Content-Type": "text/plain;charset=UTF-8"}
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


async def request(url: str, method: str = "GET", body: bytes | None = None) -> tuple[int, str]:
    return await asyncio.to_thread(plain, url, method, body)


async def polling_open(cluster: Cluster) -> dict[str, Any]:
    """A polling handshake's OPEN packet payload (sid, maxPayload, ...)."""
    status, body = await request(polling_url(cluster, id_user="1"))
    assert status == 200, body
    assert body.startswith("0{"), body
    payload: dict[str, Any] = json.loads(body[1:])
    return payload


def forge(sid: str) -> str:
    """`sid` with its first character changed: whatever the sid's encoding (hex, base64, a
    worker's name first), the first character counts in full, so this is another sid."""
    return ("1" if sid[0] == "0" else "0") + sid[1:]


@pytest.mark.parametrize(("method", "body"), [("GET", None), ("POST", b"40")])
async def test_unknown_sid_is_refused(cluster: Cluster, method: str, body: bytes | None) -> None:
    """A GET or POST for a sid no worker issued gets engine.io's 400 "Session ID unknown"."""
    status, text = await request(polling_url(cluster, sid="nonexistent"), method, body)
    assert status == 400, text
    assert json.loads(text) == SESSION_ID_UNKNOWN


async def test_forged_sid_is_refused_and_harms_no_session(cluster: Cluster) -> None:
    """A sid one character off a real one (a client picking the worker it names, or guessing
    a neighbour's) gets 400 for GET and POST, and the real session goes on: its CONNECT is
    answered in its next GET, and its DISCONNECT ends it."""
    sid = (await polling_open(cluster))["sid"]
    forged = polling_url(cluster, sid=forge(sid))
    for method, body in (("GET", None), ("POST", b"40")):
        status, text = await request(forged, method, body)
        assert status == 400, (method, status, text)

    real = polling_url(cluster, sid=sid)
    assert await request(real, "POST", b"40") == (200, "ok")
    status, text = await request(real)
    assert status == 200, text
    assert text.startswith('40{"sid":'), text
    # the client's Socket.IO DISCONNECT is no error: ok, and the session is gone
    assert await request(real, "POST", b"41") == (200, "ok")
    assert (await request(real))[0] == 400


@pytest.mark.parametrize(
    "payload",
    [b"abc", b"b###", b"4one\x1e\x1e4two"],
    ids=["unknown-packet-type", "bad-base64", "empty-packet"],
)
async def test_malformed_payload_is_refused(cluster: Cluster, payload: bytes) -> None:
    """A POST whose body is not an Engine.IO payload (a packet type that does not exist,
    a binary packet that is not base64, an empty packet between separators) gets 400."""
    sid = (await polling_open(cluster))["sid"]
    status, text = await request(polling_url(cluster, sid=sid), "POST", payload)
    assert status == 400, text


async def test_post_over_max_payload_is_refused(cluster: Cluster) -> None:
    """A POST body longer than the maxPayload the OPEN packet announces (engine.io's
    maxHttpBufferSize, 1,000,000 bytes) gets 413."""
    opened = await polling_open(cluster)
    body = b"4" + b"x" * opened["maxPayload"]  # one MESSAGE packet, one byte over
    status, text = await request(polling_url(cluster, sid=opened["sid"]), "POST", body)
    assert status == 413, text[:200]


async def test_a_flood_of_packets_over_polling_closes_its_session(cluster: Cluster) -> None:
    """SOCKETIO_FRAME_RATE (50 a second, bursts of 100) counts long-polling packets as it
    counts WebSocket frames: a POST of 200 packets is 400 and the session is closed (its
    next GET is 400)."""
    sid = (await polling_open(cluster))["sid"]
    url = polling_url(cluster, sid=sid)
    assert await request(url, "POST", b"40") == (200, "ok")
    assert (await request(url))[1].startswith("40")  # CONNECT's reply, then the handshake
    flood = "\x1e".join(['42["join","flood"]'] * 200).encode()
    assert (await request(url, "POST", flood))[0] == 400
    assert (await request(url))[0] == 400
