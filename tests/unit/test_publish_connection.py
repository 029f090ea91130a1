"""When a PublishConnection writes: the commands of one loop turn together at its end,
every reply to its own caller in order.

(Writing the first command of a turn at once was measured: bench/ab.sh, 4 rounds, roster-10
p50 2.03-2.42 against 1.79-2.22 ms, more CPU per request; not kept.)"""

from __future__ import annotations

import asyncio
from typing import Any

import hiredis
import pytest

from rooms.bus.connection import RedisNotReading, ReplyError
from rooms.bus.publisher import PublishConnection


def encode_command(*parts: bytes) -> bytes:
    return hiredis.pack_command(parts)  # type: ignore[arg-type]


class Transport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []

        self.buffered = 0
        self.aborted = False

    def write(self, data: Any) -> None:
        self.writes.append(bytes(data))

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def abort(self) -> None:
        self.aborted = True


def publish(n: int) -> tuple[bytes, ...]:
    return (b"PUBLISH", b"channel", b"%d" % n)


async def test_the_commands_of_a_turn_leave_together_at_its_end() -> None:
    connection = PublishConnection()
    transport = Transport()
    connection.connection_made(transport)
    replies = [connection.command(*publish(n)) for n in range(3)]
    assert transport.writes == []
    await asyncio.sleep(0)  # the end of the turn
    assert transport.writes == [b"".join(encode_command(*publish(n)) for n in range(3))]
    replies.append(connection.command(*publish(3)))  # the next turn's
    await asyncio.sleep(0)
    assert transport.writes[1:] == [encode_command(*publish(3))]
    connection.data_received(b":1\r\n:2\r\n:0\r\n:4\r\n")
    assert [await reply for reply in replies] == [1, 2, 0, 4]


async def test_a_lost_connection_fails_what_waits_and_refuses_new_commands() -> None:
    connection = PublishConnection()
    connection.connection_made(Transport())
    waiting = connection.command(*publish(0))
    connection.connection_lost(None)
    refused = connection.command(*publish(1))
    for future in (waiting, refused):
        assert isinstance(future.exception(), ConnectionError)


def test_a_command_is_an_array_of_binary_safe_bulk_strings() -> None:
    """hiredis.pack_command keeps CR, LF and NUL inside a payload (RESP bulk strings)."""
    assert encode_command(b"PUBLISH", b"ch", b"a\r\nb\x00") == (
        b"*3\r\n$7\r\nPUBLISH\r\n$2\r\nch\r\n$5\r\na\r\nb\x00\r\n"
    )


async def test_replies_split_across_chunks_and_errors_reach_their_callers() -> None:
    connection = PublishConnection()
    connection.connection_made(Transport())
    replies = [connection.command(*publish(n)) for n in range(3)]
    for chunk in (b":1", b"2\r\n-WRONGPASS invalid", b" password\r\n+OK\r\n"):
        connection.data_received(chunk)
    assert await replies[0] == 12
    with pytest.raises(ReplyError, match="WRONGPASS"):
        await replies[1]
    assert await replies[2] == b"OK"


async def test_a_reply_that_is_not_resp_drops_the_connection() -> None:
    connection = PublishConnection()
    transport = Transport()
    connection.connection_made(transport)
    waiting = connection.command(*publish(0))
    connection.data_received(b"hello\r\n")
    assert isinstance(waiting.exception(), ConnectionError)
    assert connection.closed and transport.aborted


async def test_past_the_cap_a_command_fails_at_once_and_the_connection_is_aborted() -> None:
    """What is queued (this turn's commands plus the transport's buffer) may reach the cap
    by one command; the next fails with RedisNotReading, as does everything waiting."""
    connection = PublishConnection(url="redis://:secret@10.0.0.1:6379", max_outgoing=1000)
    transport = Transport()
    connection.connection_made(transport)
    transport.buffered = 900
    big = (b"PUBLISH", b"c", b"x" * 200)
    waiting = connection.command(*big)  # 900 queued: accepted
    refused = connection.command(*publish(1))  # 900 + 232 queued: refused
    assert len(encode_command(*big)) == 232
    assert transport.aborted and connection.closed
    for future in (waiting, refused):
        error = future.exception()
        assert isinstance(error, RedisNotReading) and isinstance(error, ConnectionError)
    message = str(refused.exception())
    assert "not reading" in message and "1132 bytes are queued" in message
    assert "secret" not in message
    await asyncio.sleep(0)
    assert transport.writes == []  # nothing of the refused turn is written
