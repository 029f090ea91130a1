"""autobahn's per-frame debug-log helpers pass values through once installed."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import txaio
from autobahn.twisted import websocket as twisted_websocket
from autobahn.websocket import protocol

from rooms.server import autobahn_logs


@pytest.fixture
def installed(monkeypatch: pytest.MonkeyPatch) -> None:
    for module in (protocol, twisted_websocket):
        monkeypatch.setattr(module, "hltype", module.hltype)
        monkeypatch.setattr(module, "hlval", module.hlval)
    monkeypatch.setattr(protocol, "pformat", protocol.pformat)
    autobahn_logs.install()


def test_helpers_pass_values_through(installed: None) -> None:
    method = test_helpers_pass_values_through
    for module in (protocol, twisted_websocket):
        assert module.hltype(method) is method
        assert module.hlval(42, color="white") == 42
    assert protocol.pformat([("a", 1)]) == autobahn_logs.NOT_FORMATTED


def test_pformat_formats_for_debug_lines_only(
    installed: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Loud:
        def __repr__(self) -> str:
            raise AssertionError("formatted although no debug line is logged")

    protocol.pformat(Loud())  # what autobahn does for each new connection
    monkeypatch.setattr(txaio, "get_global_log_level", lambda: "debug")
    assert protocol.pformat([("a", 1)]) == "[('a', 1)]"


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
