"""Recognise the simplest HTTP/1.x requests: a GET or HEAD with no body, in plain ASCII.

A pure function with no server in it. rooms.server.fast_http serves what it recognises and hands
everything else, byte for byte, to daphne's own HTTP parser, so this parser only has to
say yes to requests it is certain of: anything unusual (a body, an upgrade, an unusual
header name, a folded line, non-ASCII bytes, a second request behind the first, an
HTTP/1.1 request without Host, which rooms.server.request_heads answers 400) is a no.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# method SP request-target SP version: only an absolute path of visible ASCII
_REQUEST_LINE = re.compile(rb"(GET|HEAD) (/[!-~]*+) HTTP/1\.([01])")
# field-name ":" OWS field-value OWS; names as RFC 9110 tokens without "_" (daphne drops
# such headers, CVE-2015-0219), values of visible ASCII, spaces and tabs. Possessive
# quantifiers: what one consumed is never tried again, so a line costs time linear in it.
_HEADER = re.compile(
    rb"([!#$%&'*+.^`|~0-9A-Za-z-]++):[ \t]*+((?:[!-~]++(?:[ \t]++[!-~]++)*+)?)[ \t]*+"
)
# headers that mean more than a simple request: a body, a protocol switch, an expectation,
# or daphne's own root-path header
_NOT_SIMPLE = frozenset(
    {b"content-length", b"transfer-encoding", b"upgrade", b"expect", b"daphne-root-path"}
)
HEAD_END = b"\r\n\r\n"
MAX_HEAD = 16 * 1024


@dataclass(frozen=True, slots=True)
class SimpleRequest:
    method: str
    http_version: str  # "1.0" or "1.1"
    raw_path: bytes  # still percent-encoded
    query_string: bytes
    headers: list[tuple[bytes, bytes]]  # names lower-cased, in arrival order
    keep_alive: bool  # whether the client may send another request on this connection


def parse_simple_request(data: bytes) -> SimpleRequest | None:
    """The request if `data` is exactly one complete simple request, else None."""
    end = data.find(HEAD_END)
    if end < 0 or end + len(HEAD_END) != len(data) or end > MAX_HEAD:
        return None
    lines = data[:end].split(b"\r\n")
    request_line = _REQUEST_LINE.fullmatch(lines[0])
    if request_line is None:
        return None
    headers: list[tuple[bytes, bytes]] = []
    connection = b""
    for line in lines[1:]:
        header = _HEADER.fullmatch(line)
        if header is None:
            return None
        name = header.group(1).lower()
        if name in _NOT_SIMPLE:
            return None
        if name == b"connection":
            connection += b"," + header.group(2).lower()
        headers.append((name, header.group(2)))
    method, target, minor = request_line.groups()
    if minor == b"1" and not any(name == b"host" for name, _ in headers):
        return None
    raw_path, _, query_string = target.partition(b"?")
    tokens = {token.strip() for token in connection.split(b",")}
    keep_alive = b"close" not in tokens if minor == b"1" else False
    return SimpleRequest(
        method=method.decode("ascii"),
        http_version="1." + minor.decode("ascii"),
        raw_path=raw_path,
        query_string=query_string,
        headers=headers,
        keep_alive=keep_alive,
    )
