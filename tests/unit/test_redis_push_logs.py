"""redis-py's pub/sub messages are no longer formatted for a debug line nobody logs."""

from __future__ import annotations

import logging

import pytest
from redis._parsers.hiredis import _AsyncHiredisParser
from redis._parsers.resp3 import _AsyncRESP3Parser
from redis.utils import HIREDIS_AVAILABLE

from rooms import redis_push_logs

Parser = _AsyncRESP3Parser | _AsyncHiredisParser


class Unformattable(bytes):
    def __repr__(self) -> str:
        raise AssertionError("formatted although no debug line is logged")

    __str__ = __repr__


def test_hiredis_parses_the_replies() -> None:
    """requirements.txt installs hiredis, which redis-py then parses with (A/B: 5-15% less
    CPU per roster): its parser must be patched too."""
    assert HIREDIS_AVAILABLE
    assert set(redis_push_logs.PARSERS) == {_AsyncRESP3Parser, _AsyncHiredisParser}


@pytest.fixture
def as_shipped(monkeypatch: pytest.MonkeyPatch) -> None:
    """redis-py's handlers, whatever an earlier test installed (importing
    identity_playground.asgi next to daphne installs the module)."""
    for parser, handler in redis_push_logs.STOCK_HANDLERS.items():
        monkeypatch.setattr(parser, "handle_pubsub_push_response", handler)


@pytest.fixture(params=redis_push_logs.PARSERS, ids=lambda cls: cls.__name__)
def parser(request: pytest.FixtureRequest, as_shipped: None) -> Parser:
    redis_push_logs.install()
    parser: Parser = request.param(socket_read_size=65536)
    return parser


async def test_a_message_passes_through_unformatted(parser: Parser) -> None:
    message = [b"message", b"channel", Unformattable(b"payload")]
    assert await parser.handle_push_response(message) is message


async def test_the_debug_line_is_still_there_when_enabled(
    parser: Parser, caplog: pytest.LogCaptureFixture
) -> None:
    message = [b"message", b"channel", b"payload"]
    with caplog.at_level(logging.DEBUG, logger="push_response"):
        assert await parser.handle_push_response(message) is message
    assert "Push response: [b'message', b'channel', b'payload']" in caplog.text


@pytest.mark.parametrize("parser_class", redis_push_logs.PARSERS, ids=lambda cls: cls.__name__)
async def test_without_it_redis_py_would_format_every_message(
    parser_class: type[Parser], as_shipped: None
) -> None:
    """Proves the first test can fail: redis-py 8.1's own handlers stringify the payload
    (when redis-py ships its fix this fails, and the module can go)."""
    stock = parser_class(socket_read_size=65536)
    with pytest.raises(AssertionError, match="formatted"):
        await stock.handle_push_response([b"message", b"channel", Unformattable(b"x")])
