"""The publisher's RESP2 encoder and single-line reply parser."""

from __future__ import annotations

import pytest

from rooms.bus.resp import LineReplies, ReplyError, UnexpectedReply, encode_command


def test_a_command_is_an_array_of_binary_safe_bulk_strings() -> None:
    assert encode_command(b"PUBLISH", b"ch", b"a\r\nb\x00") == (
        b"*3\r\n$7\r\nPUBLISH\r\n$2\r\nch\r\n$5\r\na\r\nb\x00\r\n"
    )


def test_integers_strings_and_errors_in_one_chunk() -> None:
    replies = LineReplies().feed(b":3\r\n+OK\r\n-WRONGPASS invalid password\r\n:0\r\n")
    assert replies[0] == 3 and replies[1] == "OK" and replies[3] == 0
    assert isinstance(replies[2], ReplyError) and "WRONGPASS" in str(replies[2])


def test_a_reply_split_across_chunks_waits_for_its_end() -> None:
    parser = LineReplies()
    assert parser.feed(b":1") == []
    assert parser.feed(b"2\r") == []
    assert parser.feed(b"\n:7\r\n:") == [12, 7]
    assert parser.feed(b"1\r\n") == [1]


@pytest.mark.parametrize("line", [b"$5\r\n", b"*2\r\n", b"hello\r\n", b":x\r\n"])
def test_anything_else_is_refused(line: bytes) -> None:
    with pytest.raises(UnexpectedReply):
        LineReplies().feed(line)
