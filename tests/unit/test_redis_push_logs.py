"""redis-py's pub/sub messages are no longer formatted for a debug line nobody logs."""

from __future__ import annotations

import logging

import pytest
from redis._parsers.resp3 import _AsyncRESP3Parser

from rooms import redis_push_logs


class Unformattable(bytes):
    def __repr__(self) -> str:
        raise AssertionError("formatted although no debug line is logged")

    __str__ = __repr__


@pytest.fixture
def as_shipped(monkeypatch: pytest.MonkeyPatch) -> None:
    """redis-py's handler, whatever an earlier test installed (importing
    identity_playground.asgi next to daphne installs the module)."""
    handler = redis_push_logs.STOCK_HANDLER
    monkeypatch.setattr(_AsyncRESP3Parser, "handle_pubsub_push_response", handler)


@pytest.fixture
def parser(as_shipped: None) -> _AsyncRESP3Parser:
    redis_push_logs.install()
    return _AsyncRESP3Parser(socket_read_size=65536)


async def test_a_message_passes_through_unformatted(parser: _AsyncRESP3Parser) -> None:
    message = [b"message", b"channel", Unformattable(b"payload")]
    assert await parser.handle_push_response(message) is message


async def test_the_debug_line_is_still_there_when_enabled(
    parser: _AsyncRESP3Parser, caplog: pytest.LogCaptureFixture
) -> None:
    message = [b"message", b"channel", b"payload"]
    with caplog.at_level(logging.DEBUG, logger="push_response"):
        assert await parser.handle_push_response(message) is message
    assert "Push response: [b'message', b'channel', b'payload']" in caplog.text


async def test_without_it_redis_py_would_format_every_message(as_shipped: None) -> None:
    """Proves the first test can fail: redis-py 8.1's own handler stringifies the payload
    (when redis-py ships its fix this fails, and the module can go)."""
    stock = _AsyncRESP3Parser(socket_read_size=65536)
    with pytest.raises(AssertionError, match="formatted"):
        await stock.handle_push_response([b"message", b"channel", Unformattable(b"x")])
