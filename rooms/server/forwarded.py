"""daphne's proxy headers believed only from the proxies the settings name.

With `--proxy-headers` daphne sets the ASGI scope's `client` from X-Forwarded-For and its
`scheme` from X-Forwarded-Proto on every connection, whoever opened it, and takes the
FIRST X-Forwarded-For entry, the one a client writes (daphne/utils.py
`parse_x_forwarded_for`, called by daphne/http_protocol.py and daphne/ws_protocol.py;
docs/upstream/daphne-x-forwarded-for-first-entry.md): a client talking straight to a
worker chooses its own address. Here the headers count only when the connection's peer is
a proxy the worker trusts (the predicate handed to `install`, from FORWARDED_ALLOW_IPS),
and the address is the LAST entry, the one that proxy wrote. Without `--proxy-headers`
daphne reads none of them.

Always on, like rooms.server.limits: this is safety. rooms.server.fast_http builds its
scopes through `forwarded_client` too. Nothing of the application is imported here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from daphne import http_protocol, utils, ws_protocol
from twisted.web.http_headers import Headers

_daphne_parse = utils.parse_x_forwarded_for


def _trusts_nobody(peer: str) -> bool:
    return False


_trusts: Callable[[str], bool] = _trusts_nobody


def _last_entry(headers: Any, name: str) -> str | None:
    """The header's last comma-separated entry over all its lines; `headers` as daphne
    hands them: Twisted's Headers, or a dict of one value or a list of values per name."""
    if isinstance(headers, Headers):
        values = headers.getRawHeaders(name.encode()) or []
    else:
        wanted = name.lower().encode()
        values = []
        for key, value in headers.items():
            if key.lower() == wanted:
                values += value if isinstance(value, list) else [value]
    joined = b",".join(values).decode("latin-1")
    return joined.rsplit(",", 1)[-1].strip() or None


def forwarded_client(
    headers: Any,
    address_header_name: str | None = "X-Forwarded-For",
    port_header_name: str | None = "X-Forwarded-Port",
    proto_header_name: str | None = "X-Forwarded-Proto",
    original_addr: list[Any] | None = None,
    original_scheme: str | None = None,
) -> tuple[list[Any] | None, str | None]:
    """daphne's `parse_x_forwarded_for` for a trusted peer, with the last address entry;
    the connection's own address and scheme for any other."""
    if not address_header_name or not original_addr or not _trusts(str(original_addr[0])):
        return original_addr, original_scheme
    address, scheme = _daphne_parse(
        headers,
        address_header_name,
        port_header_name,
        proto_header_name,
        original_addr,
        original_scheme,
    )
    last = _last_entry(headers, address_header_name)
    if address is not original_addr and address is not None and last is not None:
        address = [last, address[1]]
    return address, scheme


def install(trusts: Callable[[str], bool]) -> None:
    """daphne believes proxy headers from now on only from peers `trusts` accepts
    (idempotent; the last predicate given holds)."""
    global _trusts
    _trusts = trusts
    http_protocol.parse_x_forwarded_for = forwarded_client
    ws_protocol.parse_x_forwarded_for = forwarded_client
