"""Limits per client address count the address the proxy saw, not one the client wrote."""

from __future__ import annotations

from pytest_django.fixtures import Settings

from identity_playground.client_address import client_address


def test_behind_a_trusted_proxy_the_last_forwarded_entry_counts(
    settings: Settings,
) -> None:
    """Heroku's router and nginx append the peer they accepted: a client that writes its
    own X-Forwarded-For changes only the entries before it."""
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    assert client_address("10.1.2.3", "203.0.113.9") == "203.0.113.9"
    assert client_address("10.1.2.3", "1.1.1.1, 2.2.2.2, 203.0.113.9") == "203.0.113.9"
    assert client_address("10.1.2.3", "spoofed-each-time,203.0.113.9 ") == "203.0.113.9"


def test_without_a_trusted_proxy_the_header_is_ignored(settings: Settings) -> None:
    settings.SECURE_PROXY_SSL_HEADER = None
    assert client_address("10.1.2.3", "203.0.113.9") == "10.1.2.3"
    assert client_address(None, None) == "-"
