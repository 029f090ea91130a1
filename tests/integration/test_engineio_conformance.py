"""The Engine.IO protocol's own conformance suite, as tests of ours.

The 24 checks of socketio/engine.io-protocol's `test-suite/test-suite.js` (handshake,
message, heartbeat, close and upgrade, over HTTP long-polling and WebSocket), against the
Engine.IO layer mounted at /engine.io/ with an echo handler (tests/integration/
engineio_echo_app.py, a fixture, not a route of the product) on 2 workers sharing one port.
Every request opens a connection of its own, so a session's requests land on either worker
as the kernel hands connections out: no stickiness. The suite's timings are kept:
pingInterval 300 ms, pingTimeout 200 ms.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections.abc import AsyncIterator, Iterator
from http.client import HTTPConnection

import aiohttp
import pytest

from tests.hostile.test_fragments import OPCODE_TEXT, RawWebSocket, client_frame
from tests.integration.servers import Cluster, RedisServer

pytestmark = [pytest.mark.integration, pytest.mark.daphne]

PING_INTERVAL = 300
PING_TIMEOUT = 200


@pytest.fixture(scope="module")
def cluster(
    redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    cluster = Cluster(
        workers=2,
        redis_url=redis_server.url,
        workdir=tmp_path_factory.mktemp("cluster"),
        extra_env={
            "SOCKETIO_PING_INTERVAL_MS": str(PING_INTERVAL),
            "SOCKETIO_PING_TIMEOUT_MS": str(PING_TIMEOUT),
        },
        application="tests.integration.engineio_echo_app:application",
    ).start()
    yield cluster
    cluster.stop()
    print(f"---- cluster :{cluster.port} log ----\n{cluster.logs()[-4000:]}")


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """A connection per request (no keep-alive): requests land on either worker."""
    connector = aiohttp.TCPConnector(force_close=True)
    async with aiohttp.ClientSession(connector=connector) as session:
        yield session


def url(cluster: Cluster, query: str = "EIO=4&transport=polling") -> str:
    return f"{cluster.url}/engine.io/?{query}"


def ws_url(cluster: Cluster, query: str = "EIO=4&transport=websocket") -> str:
    return f"{cluster.ws_url}/engine.io/?{query}"


async def fetch(
    http: aiohttp.ClientSession, target: str, method: str = "GET", body: str | None = None
) -> tuple[int, str]:
    async with http.request(method, target, data=body) as response:
        return response.status, await response.text()


async def polling_session(http: aiohttp.ClientSession, cluster: Cluster) -> str:
    status, content = await fetch(http, url(cluster))
    assert status == 200, content
    sid: str = json.loads(content[1:])["sid"]
    return sid


def session_url(cluster: Cluster, sid: str) -> str:
    return url(cluster, f"EIO=4&transport=polling&sid={sid}")


def open_values(content: str) -> dict[str, object]:
    assert content.startswith("0"), content
    value: dict[str, object] = json.loads(content[1:])
    assert set(value) == {"sid", "upgrades", "pingInterval", "pingTimeout", "maxPayload"}
    assert isinstance(value["sid"], str)
    assert (value["pingInterval"], value["pingTimeout"]) == (PING_INTERVAL, PING_TIMEOUT)
    assert value["maxPayload"] == 1_000_000
    return value


async def refused(http: aiohttp.ClientSession, target: str) -> None:
    """A WebSocket handshake the server refuses, or closes at once."""
    try:
        async with http.ws_connect(target) as ws:
            message = await ws.receive(timeout=5)
            assert message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED), message
    except aiohttp.WSServerHandshakeError:
        pass


async def text(ws: aiohttp.ClientWebSocketResponse) -> str:
    message = await ws.receive(timeout=5)
    assert message.type == aiohttp.WSMsgType.TEXT, message
    return str(message.data)


async def closes(ws: aiohttp.ClientWebSocketResponse, within: float = 5) -> None:
    while True:
        message = await ws.receive(timeout=within)
        if message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
            return


# ---- handshake ----------------------------------------------------------------------------


async def test_handshake_polling_opens_a_session(
    cluster: Cluster, http: aiohttp.ClientSession
) -> None:
    status, content = await fetch(http, url(cluster))
    assert status == 200
    assert open_values(content)["upgrades"] == ["websocket"]


async def test_handshake_polling_fails_with_an_invalid_eio(
    cluster: Cluster, http: aiohttp.ClientSession
) -> None:
    for query in ("transport=polling", "EIO=abc&transport=polling"):
        assert (await fetch(http, url(cluster, query)))[0] == 400, query


async def test_handshake_polling_fails_with_an_invalid_transport(
    cluster: Cluster, http: aiohttp.ClientSession
) -> None:
    for query in ("EIO=4", "EIO=4&transport=abc"):
        assert (await fetch(http, url(cluster, query)))[0] == 400, query


async def test_handshake_polling_fails_with_an_invalid_method(
    cluster: Cluster, http: aiohttp.ClientSession
) -> None:
    for method in ("POST", "PUT"):
        assert (await fetch(http, url(cluster), method, ""))[0] == 400, method


async def test_handshake_websocket_opens_a_session(
    cluster: Cluster, http: aiohttp.ClientSession
) -> None:
    async with http.ws_connect(ws_url(cluster)) as ws:
        assert open_values(await text(ws))["upgrades"] == []


async def test_handshake_websocket_fails_with_an_invalid_eio(
    cluster: Cluster, http: aiohttp.ClientSession
) -> None:
    for query in ("transport=websocket", "EIO=abc&transport=websocket"):
        await refused(http, ws_url(cluster, query))


async def test_handshake_websocket_fails_with_an_invalid_transport(
    cluster: Cluster, http: aiohttp.ClientSession
) -> None:
    for query in ("EIO=4", "EIO=4&transport=abc"):
        await refused(http, ws_url(cluster, query))


# ---- message --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "payload",
    ["4hello", "4test1\x1e4test2\x1e4test3", "4hello\x1ebAQIDBA=="],
    ids=["one-text", "several-text", "text-and-binary"],
)
async def test_message_polling_echoes_a_payload(
    cluster: Cluster, http: aiohttp.ClientSession, payload: str
) -> None:
    sid = await polling_session(http, cluster)
    assert await fetch(http, session_url(cluster, sid), "POST", payload) == (200, "ok")
    assert await fetch(http, session_url(cluster, sid)) == (200, payload)


async def test_message_polling_closes_the_session_upon_invalid_packet_format(
    cluster: Cluster, http: aiohttp.ClientSession
) -> None:
    sid = await polling_session(http, cluster)
    assert (await fetch(http, session_url(cluster, sid), "POST", "abc"))[0] == 400
    assert (await fetch(http, session_url(cluster, sid)))[0] == 400


async def test_message_polling_closes_the_session_upon_duplicate_poll_requests(
    cluster: Cluster, http: aiohttp.ClientSession
) -> None:
    sid = await polling_session(http, cluster)

    async def second() -> tuple[int, str]:
        # after the first is held, wherever it was forwarded (the suite waits 5 ms)
        await asyncio.sleep(0.2)
        return await fetch(http, session_url(cluster, sid) + "&t=burst")

    first, duplicate = await asyncio.gather(fetch(http, session_url(cluster, sid)), second())
    assert first == (200, "1")
    assert duplicate[0] in (400, 500)
    assert (await fetch(http, session_url(cluster, sid)))[0] == 400


async def test_message_websocket_echoes_a_text_packet(
    cluster: Cluster, http: aiohttp.ClientSession
) -> None:
    async with http.ws_connect(ws_url(cluster)) as ws:
        await text(ws)  # the handshake
        await ws.send_str("4hello")
        assert await text(ws) == "4hello"


async def test_message_websocket_echoes_a_binary_packet(
    cluster: Cluster, http: aiohttp.ClientSession
) -> None:
    async with http.ws_connect(ws_url(cluster)) as ws:
        await text(ws)
        await ws.send_bytes(bytes([1, 2, 3, 4]))
        message = await ws.receive(timeout=5)
        assert (message.type, message.data) == (aiohttp.WSMsgType.BINARY, bytes([1, 2, 3, 4]))


async def test_message_websocket_closes_the_session_upon_invalid_packet_format(
    cluster: Cluster, http: aiohttp.ClientSession
) -> None:
    async with http.ws_connect(ws_url(cluster)) as ws:
        await text(ws)
        await ws.send_str("abc")
        await closes(ws)


# ---- heartbeat ------------------------------------------------------------------------------


async def test_heartbeat_polling_sends_ping_and_takes_pong(
    cluster: Cluster, http: aiohttp.ClientSession
) -> None:
    sid = await polling_session(http, cluster)
    for _ in range(3):
        assert await fetch(http, session_url(cluster, sid)) == (200, "2")
        assert (await fetch(http, session_url(cluster, sid), "POST", "3"))[0] == 200


async def test_heartbeat_polling_closes_the_session_upon_ping_timeout(
    cluster: Cluster, http: aiohttp.ClientSession
) -> None:
    sid = await polling_session(http, cluster)
    await asyncio.sleep((PING_INTERVAL + PING_TIMEOUT) / 1000)
    assert (await fetch(http, session_url(cluster, sid)))[0] == 400


async def test_heartbeat_websocket_sends_ping_and_takes_pong(
    cluster: Cluster, http: aiohttp.ClientSession
) -> None:
    async with http.ws_connect(ws_url(cluster), autoping=False) as ws:
        await text(ws)
        for _ in range(3):
            assert await text(ws) == "2"
            await ws.send_str("3")


async def test_heartbeat_websocket_closes_the_session_upon_ping_timeout(
    cluster: Cluster, http: aiohttp.ClientSession
) -> None:
    async with http.ws_connect(ws_url(cluster)) as ws:
        await text(ws)
        await closes(ws, within=(PING_INTERVAL + PING_TIMEOUT) / 1000 + 2)


# ---- close ----------------------------------------------------------------------------------


async def test_close_polling_forcefully_closes_the_session(
    cluster: Cluster, http: aiohttp.ClientSession
) -> None:
    """A CLOSE POSTed while a GET is held ends the session: the GET gets NOOP. The suite
    sends both at once and counts on the GET arriving first; here the POST waits a moment,
    so that a GET forwarded to the other worker is held there before the CLOSE (else it
    finds the session gone: 400, which is right for a GET that comes after the close)."""
    sid = await polling_session(http, cluster)

    async def close_soon() -> tuple[int, str]:
        await asyncio.sleep(0.2)
        return await fetch(http, session_url(cluster, sid), "POST", "1")

    poll, closed = await asyncio.gather(fetch(http, session_url(cluster, sid)), close_soon())
    assert (poll, closed) == ((200, "6"), (200, "ok"))
    assert (await fetch(http, session_url(cluster, sid)))[0] == 400


async def test_close_websocket_forcefully_closes_the_session(
    cluster: Cluster, http: aiohttp.ClientSession
) -> None:
    async with http.ws_connect(ws_url(cluster)) as ws:
        await text(ws)
        await ws.send_str("1")
        await closes(ws)


# ---- upgrade --------------------------------------------------------------------------------


def upgrade_url(cluster: Cluster, sid: str) -> str:
    return ws_url(cluster, f"EIO=4&transport=websocket&sid={sid}")


async def test_upgrade_from_polling_to_websocket(
    cluster: Cluster, http: aiohttp.ClientSession
) -> None:
    sid = await polling_session(http, cluster)
    async with http.ws_connect(upgrade_url(cluster, sid)) as ws:
        await ws.send_str("2probe")
        assert await text(ws) == "3probe"
        assert await fetch(http, session_url(cluster, sid)) == (200, "6")
        await ws.send_str("5")
        await ws.send_str("4hello")
        assert await text(ws) == "4hello"


async def test_upgrade_ignores_http_requests_with_the_same_sid_after_it(
    cluster: Cluster, http: aiohttp.ClientSession
) -> None:
    sid = await polling_session(http, cluster)
    async with http.ws_connect(upgrade_url(cluster, sid)) as ws:
        await ws.send_str("2probe")
        await ws.send_str("5")
        assert await text(ws) == "3probe"
        assert (await fetch(http, session_url(cluster, sid)))[0] == 400
        await ws.send_str("4hello")
        assert await text(ws) == "4hello"


async def test_upgrade_ignores_a_websocket_with_the_same_sid_after_it(
    cluster: Cluster, http: aiohttp.ClientSession
) -> None:
    sid = await polling_session(http, cluster)
    async with http.ws_connect(upgrade_url(cluster, sid)) as ws:
        await ws.send_str("2probe")
        await ws.send_str("5")
        assert await text(ws) == "3probe"
        await refused(http, upgrade_url(cluster, sid))  # a browser sees its close event
        await ws.send_str("4hello")
        assert await text(ws) == "4hello"


# ---- across workers -------------------------------------------------------------------------
# Beyond the suite: a session's requests served by the worker that does not hold it. A
# connection is put on a chosen worker by stopping the other (SIGSTOP) while it connects:
# only the running one accepts from the shared socket.


def pid_of_owner(sid: str) -> int:
    return int(sid.split(".")[1].split("-")[1])  # the sid names its worker's procid


class Connection:
    """One kept-alive HTTP/1.1 connection (so one worker), for polling and then an upgrade."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.http = HTTPConnection("127.0.0.1", cluster.port, timeout=10)
        self.http.connect()

    def request(self, query: str, body: str | None = None) -> tuple[int, str]:
        method = "GET" if body is None else "POST"
        self.http.request(method, f"/engine.io/?EIO=4&transport=polling{query}", body=body)
        response = self.http.getresponse()
        return response.status, response.read().decode()

    def handshake(self) -> str:
        status, content = self.request("")
        assert status == 200, content
        sid: str = json.loads(content[1:])["sid"]
        return sid

    def upgrade(self, sid: str) -> RawWebSocket:
        """This connection becomes a WebSocket for `sid` (an Upgrade on a kept-alive one)."""
        target = f"/engine.io/?EIO=4&transport=websocket&sid={sid}"
        return RawWebSocket.upgrade(self.http.sock, self.cluster.port, target)


def on_each_worker(cluster: Cluster) -> tuple[Connection, Connection, str]:
    """A connection to the worker holding a fresh session, one to the other worker, and the
    session's sid."""
    home = Connection(cluster)
    sid = home.handshake()
    owner = pid_of_owner(sid)
    os.kill(owner, signal.SIGSTOP)
    try:
        away = Connection(cluster)
        assert pid_of_owner(away.handshake()) != owner
    finally:
        os.kill(owner, signal.SIGCONT)
    return home, away, sid


def test_a_session_is_served_through_the_worker_that_does_not_hold_it(cluster: Cluster) -> None:
    """POST and GET landing on the other worker reach the session (forwarded over the bus);
    a WebSocket landing there upgrades it and carries its packets both ways; the old
    transport's requests are refused after the upgrade, on either worker."""
    home, away, sid = on_each_worker(cluster)
    assert away.request(f"&sid={sid}", "4hello\x1ebAQIDBA==") == (200, "ok")
    assert away.request(f"&sid={sid}") == (200, "4hello\x1ebAQIDBA==")
    assert home.request(f"&sid={sid}", "4again") == (200, "ok")
    ws = away.upgrade(sid)
    ws.send(client_frame(OPCODE_TEXT, b"2probe", fin=True))
    assert ws.wait_for_text(lambda text: text == "3probe")
    assert home.request(f"&sid={sid}") == (200, "6")  # what was queued waits for the upgrade
    ws.send(client_frame(OPCODE_TEXT, b"5", fin=True))
    ws.send(client_frame(OPCODE_TEXT, b"4over the relay", fin=True))
    ws.wait_for_text(lambda text: text == "4over the relay")
    assert "4again" in ws.texts  # queued before the upgrade, sent over the WebSocket first
    assert ws.texts.index("4again") < ws.texts.index("4over the relay")
    for connection in (home, Connection(cluster)):
        assert connection.request(f"&sid={sid}")[0] == 400
    ws.close()


def test_a_session_whose_worker_is_gone_is_unknown(cluster: Cluster) -> None:
    """A request for a session of a worker that died is 400 "Session ID unknown" at once
    (the client opens another session), never a wait or a 500."""
    home, away, sid = on_each_worker(cluster)
    os.kill(pid_of_owner(sid), signal.SIGKILL)
    started = time.monotonic()
    status, content = away.request(f"&sid={sid}", "4hello")
    assert (status, json.loads(content)) == (400, {"code": 1, "message": "Session ID unknown"})
    assert time.monotonic() - started < 3
    cluster.wait_for_workers(2)


async def test_a_page_of_another_site_opens_no_session(
    cluster: Cluster, http: aiohttp.ClientSession
) -> None:
    """Long-polling is checked as a WebSocket handshake is: a browser's Origin must be the
    server's own (or trusted); clients that send none are served."""
    for origin, status in (("http://evil.example", 403), (cluster.url, 200)):
        async with http.get(url(cluster), headers={"Origin": origin}) as response:
            assert response.status == status, origin
