"""Limits per client address count the address the proxy saw, and only a proxy the
settings name (FORWARDED_ALLOW_IPS) is believed about it."""

from __future__ import annotations

import pytest
from pytest_django.fixtures import Settings

from identity_playground.client_address import TrustedProxies, client_address


def test_behind_a_trusted_proxy_the_last_forwarded_entry_counts(settings: Settings) -> None:
    """Heroku's router and nginx append the peer they accepted: a client that writes its
    own X-Forwarded-For changes only the entries before it."""
    settings.FORWARDED_ALLOW_IPS = ["10.1.2.3"]
    assert client_address("10.1.2.3", "203.0.113.9") == "203.0.113.9"
    assert client_address("10.1.2.3", "1.1.1.1, 2.2.2.2, 203.0.113.9") == "203.0.113.9"
    assert client_address("10.1.2.3", "spoofed-each-time,203.0.113.9 ") == "203.0.113.9"
    assert client_address("10.1.2.3", " , ") == "10.1.2.3"  # nothing written: the peer


def test_a_peer_not_in_the_list_is_counted_by_its_own_address(settings: Settings) -> None:
    """Whatever a client talking straight to a worker writes, and whatever the HTTPS
    settings say (production turns SECURE_PROXY_SSL_HEADER on)."""
    settings.FORWARDED_ALLOW_IPS = ["10.1.2.3"]
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    assert client_address("198.51.100.7", "203.0.113.9") == "198.51.100.7"
    settings.FORWARDED_ALLOW_IPS = []
    assert client_address("10.1.2.3", "203.0.113.9") == "10.1.2.3"
    assert client_address(None, "203.0.113.9") == "-"
    assert client_address(None, None) == "-"


def test_networks_and_any(settings: Settings) -> None:
    settings.FORWARDED_ALLOW_IPS = ["10.0.0.0/8", "2001:db8::/32", "192.0.2.1"]
    assert client_address("10.200.3.4", "203.0.113.9") == "203.0.113.9"
    assert client_address("::ffff:10.200.3.4", "203.0.113.9") == "203.0.113.9"
    assert client_address("2001:db8::5", "203.0.113.9") == "203.0.113.9"
    assert client_address("192.0.2.1", "203.0.113.9") == "203.0.113.9"
    assert client_address("11.0.0.1", "203.0.113.9") == "11.0.0.1"
    assert client_address("192.0.2.2", "203.0.113.9") == "192.0.2.2"
    settings.FORWARDED_ALLOW_IPS = ["*"]  # Heroku's router: addresses not known in advance
    assert client_address("11.0.0.1", "203.0.113.9") == "203.0.113.9"


def test_the_list_is_checked() -> None:
    assert not TrustedProxies.parse([]).trusts("127.0.0.1")
    assert not TrustedProxies.parse(["127.0.0.1"]).trusts("unix-socket")
    assert TrustedProxies.parse([" 127.0.0.1 ", ""]).trusts("127.0.0.1")
    with pytest.raises(ValueError, match="'10.0.0.0/33' is not an address, a network or"):
        TrustedProxies.parse(["10.0.0.0/33"])
    with pytest.raises(ValueError, match="'localhost'"):
        TrustedProxies.parse(["localhost"])
