"""autobahn's debug-log arguments are not built for lines nobody logs, once installed."""

from __future__ import annotations

import pprint
from types import SimpleNamespace
from typing import Any

import autobahn.util
import pytest
import txaio
from autobahn.twisted import websocket as twisted_websocket
from autobahn.websocket import protocol
from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport

from rooms.server import autobahn_logs

HANDSHAKE = (
    b"GET / HTTP/1.1\r\nHost: 127.0.0.1:1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)
PEER = IPv4Address("TCP", "127.0.0.1", 40000)


class Loud:
    """A connection setting that counts how often autobahn formats it."""

    formatted = 0

    def __repr__(self) -> str:
        Loud.formatted += 1
        return "Loud()"


@pytest.fixture
def as_shipped(monkeypatch: pytest.MonkeyPatch) -> None:
    for module in (protocol, twisted_websocket):
        monkeypatch.setattr(module, "hltype", autobahn.util.hltype)
        monkeypatch.setattr(module, "hlval", autobahn.util.hlval)
    monkeypatch.setattr(protocol, "pformat", pprint.pformat)


@pytest.fixture
def installed(as_shipped: None) -> None:
    autobahn_logs.install()


@pytest.fixture
def colourings(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Every call of autobahn.util.hl (the colouring behind hltype and hlval)."""
    calls: list[object] = []
    colour = autobahn.util.hl

    def counting(*args: Any, **kwargs: Any) -> str:
        calls.append(args)
        return colour(*args, **kwargs)

    monkeypatch.setattr(autobahn.util, "hl", counting)
    return calls


def handshake() -> bytes:
    """One WebSocket opening handshake through autobahn's Twisted server protocol, with a
    Loud setting among those autobahn dumps for each new connection."""
    factory = twisted_websocket.WebSocketServerFactory("ws://127.0.0.1:1")
    factory.protocol = twisted_websocket.WebSocketServerProtocol
    factory.maxFramePayloadSize = Loud()
    connection = factory.buildProtocol(PEER)
    transport = StringTransport(peerAddress=PEER)
    connection.makeConnection(transport)
    connection.dataReceived(HANDSHAKE)
    return transport.value()


def test_a_handshake_neither_colours_nor_formats_anything(
    installed: None, colourings: list[object]
) -> None:
    """A new connection's handshake reaches neither autobahn.util's colouring nor the
    repr of its settings while autobahn's debug lines are off."""
    Loud.formatted = 0
    assert handshake().startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
    assert (len(colourings), Loud.formatted) == (0, 0)


def test_as_shipped_a_handshake_colours_and_formats_for_debug_lines_nobody_logs(
    as_shipped: None, colourings: list[object]
) -> None:
    """What the tuning saves (and proof the test above can fail)."""
    Loud.formatted = 0
    assert handshake().startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
    assert len(colourings) > 5
    assert Loud.formatted >= 1


def test_with_debug_lines_on_the_settings_are_still_shown(
    installed: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With txaio's level at debug the settings dump is formatted as before."""
    monkeypatch.setattr(txaio, "get_global_log_level", lambda: "debug")
    Loud.formatted = 0
    handshake()
    assert Loud.formatted >= 1


def test_a_frame_is_framed_without_the_helpers(
    installed: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sending a frame no longer reaches autobahn.util's colouring at all."""

    def refuse(*_args: object, **_kwargs: object) -> str:
        raise AssertionError("autobahn.util.hl called")

    monkeypatch.setattr("autobahn.util.hl", refuse)
    sent: list[bytes] = []
    sender = twisted_websocket.WebSocketServerProtocol()
    sender.transport = type("Transport", (), {"write": lambda _self, data: sent.append(data)})()
    sender.send_queue = []
    sender.state = protocol.WebSocketProtocol.STATE_OPEN
    sender.logOctets = False
    sender.trafficStats = SimpleNamespace(outgoingOctetsWireLevel=0)
    sender.peer = "tcp:127.0.0.1:1"
    sender.sendData(b"\x81\x02hi")
    assert sent == [b"\x81\x02hi"]
