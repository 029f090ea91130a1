"""rooms.server.forwarded: daphne's proxy headers only from a trusted peer, with the last
X-Forwarded-For entry."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from daphne import http_protocol, ws_protocol
from twisted.web.http_headers import Headers

from rooms.server import forwarded

PROXY = ["10.0.0.1", 51000]
HEADERS = {
    b"X-Forwarded-For": [b"198.51.100.7, 203.0.113.9"],
    b"X-Forwarded-Port": [b"443"],
    b"X-Forwarded-Proto": [b"https"],
}


@pytest.fixture
def installed(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(http_protocol, "parse_x_forwarded_for", http_protocol.parse_x_forwarded_for)
    monkeypatch.setattr(ws_protocol, "parse_x_forwarded_for", ws_protocol.parse_x_forwarded_for)
    monkeypatch.setattr(forwarded, "_trusts", forwarded._trusts)
    forwarded.install(lambda peer: peer == PROXY[0])
    yield


def parse(headers: object, peer: list[object]) -> tuple[object, object]:
    return forwarded.forwarded_client(
        headers, "X-Forwarded-For", "X-Forwarded-Port", "X-Forwarded-Proto", peer, "http"
    )


@pytest.mark.parametrize("make", [Headers, dict], ids=["Twisted's headers", "a dict"])
def test_a_trusted_peer_forwards_the_last_address_its_port_and_scheme(
    installed: None, make: type
) -> None:
    assert parse(make(HEADERS), PROXY) == (["203.0.113.9", 443], "https")


def test_daphnes_websocket_headers_one_value_per_name(installed: None) -> None:
    """daphne/ws_protocol.py hands a dict of single values, and no scheme."""
    headers = {b"x-forwarded-for": b"198.51.100.7, 203.0.113.9"}
    assert forwarded.forwarded_client(headers, "X-Forwarded-For", None, None, PROXY) == (
        ["203.0.113.9", 0],
        None,
    )


def test_several_header_lines_are_one_list(installed: None) -> None:
    headers = Headers({b"X-Forwarded-For": [b"198.51.100.7", b"203.0.113.9"]})
    assert parse(headers, PROXY) == (["203.0.113.9", 0], "http")


def test_anyone_else_keeps_its_own_address_and_scheme(installed: None) -> None:
    """daphne's own parser gave ["198.51.100.7", 443] and https to any client."""
    peer = ["192.0.2.50", 40000]
    assert parse(Headers(HEADERS), peer) == (peer, "http")
    assert parse(Headers(HEADERS), None) == (None, "http")


def test_without_the_header_the_peer_stays(installed: None) -> None:
    assert parse(Headers({b"X-Forwarded-Proto": [b"https"]}), PROXY) == (PROXY, "http")


def test_install_replaces_daphnes_parser_in_both_protocols(installed: None) -> None:
    assert http_protocol.parse_x_forwarded_for is forwarded.forwarded_client
    assert ws_protocol.parse_x_forwarded_for is forwarded.forwarded_client
