"""Direct text frames are byte for byte what autobahn sends, and only sent when it would."""

from __future__ import annotations

from functools import partial
from typing import Any

import pytest
from daphne.server import Server
from daphne.ws_protocol import WebSocketFactory, WebSocketProtocol
from twisted.internet.testing import StringTransport

from rooms.server import ws_frames
from rooms.server.ws_frames import frame_writer, text_frame


def open_connection() -> WebSocketProtocol:
    """daphne's WebSocket protocol, open, on a transport that records what is written."""
    factory = WebSocketFactory(server_class=None)
    connection = factory.buildProtocol(None)
    connection.makeConnection(StringTransport())
    connection.state = WebSocketProtocol.STATE_OPEN
    return connection


def autobahn_bytes(text: str) -> bytes:
    connection = open_connection()
    connection.sendMessage(text.encode("utf-8"), isBinary=False)
    return bytes(connection.transport.value())


@pytest.mark.parametrize("length", [0, 1, 125, 126, 127, 65535, 65536, 70000])
def test_frames_equal_autobahns_at_every_length_boundary(length: int) -> None:
    text = "a" * length
    assert text_frame(text) == autobahn_bytes(text)


def test_multibyte_text_is_framed_by_its_utf8_length() -> None:
    text = '42["identity-change",{"id_user":"1","name":"Zoë 🚀"}]' * 3
    assert text_frame(text) == autobahn_bytes(text)


def test_the_writer_writes_only_while_autobahn_would_send_the_same(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ws_frames, "_installed", True)
    connection = open_connection()
    daphne = object.__new__(Server)
    write = frame_writer(partial(daphne.handle_reply, connection))  # daphne's ASGI send
    assert write is not None
    assert write("40") is True
    assert connection.transport.value() == b"\x81\x0240"
    connection.send_queue.append((b"queued", True))
    assert write("41") is False  # autobahn has writes queued: keep the order, take its path
    connection.send_queue.clear()
    connection.send_state = WebSocketProtocol.SEND_STATE_INSIDE_MESSAGE
    assert write("41") is False
    connection.send_state = WebSocketProtocol.SEND_STATE_GROUND
    connection.state = WebSocketProtocol.STATE_CLOSING
    assert write("41") is False
    assert connection.transport.value() == b"\x81\x0240"


@pytest.mark.parametrize("send", [None, print, partial(print, "not a connection")])
def test_no_writer_for_anything_but_daphnes_websocket_send(send: Any) -> None:
    assert frame_writer(send) is None
