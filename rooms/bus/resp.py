"""The few pieces of Redis's wire protocol (RESP2) that the publisher speaks.

Pure functions, no I/O: a command is encoded as an array of bulk strings, and the replies
a publisher ever gets (integers for PUBLISH, +OK for AUTH, errors) are single lines.
"""

from __future__ import annotations

from dataclasses import dataclass


class ReplyError(Exception):
    """Redis answered a command with an error line (-ERR ..., -NOAUTH ..., -WRONGPASS ...)."""


class UnexpectedReply(ValueError):
    """A reply this parser does not handle: the connection cannot be trusted any more."""


def encode_command(*parts: bytes) -> bytes:
    """`*N\\r\\n` then `$len\\r\\npart\\r\\n` for each part: binary safe, any length."""
    out = [b"*%d\r\n" % len(parts)]
    for part in parts:
        out.append(b"$%d\r\n%b\r\n" % (len(part), part))
    return b"".join(out)


Reply = int | str | ReplyError


@dataclass
class LineReplies:
    """Splits a byte stream of single-line replies into integers, simple strings and errors;
    keeps an incomplete last line for the next chunk."""

    rest: bytes = b""

    def feed(self, data: bytes) -> list[Reply]:
        lines = (self.rest + data).split(b"\r\n")
        self.rest = lines.pop()
        return [self._parse(line) for line in lines]

    @staticmethod
    def _parse(line: bytes) -> Reply:
        kind, body = line[:1], line[1:]
        if kind == b":" and body.lstrip(b"-").isdigit():
            return int(body)
        if kind == b"+":
            return body.decode("utf-8", "replace")
        if kind == b"-":
            return ReplyError(body.decode("utf-8", "replace"))
        raise UnexpectedReply(f"unexpected reply line {line[:40]!r}")
