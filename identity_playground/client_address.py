"""Which address a request came from, for limits counted per client address.

Behind a proxy (Heroku's router, nginx with `$proxy_add_x_forwarded_for`) the proxy
appends the address it accepted the connection from to X-Forwarded-For, so the LAST entry
is the one a client cannot choose; earlier entries are whatever the client sent. daphne's
`--proxy-headers` takes the first (daphne/utils.py `parse_x_forwarded_for`), which a client
can set to a new value on every request to dodge a per-address limit.

The header is read only when the connection's peer is a proxy FORWARDED_ALLOW_IPS names
(addresses or networks, `*` for any: the setting uvicorn and gunicorn call by that name);
from anyone else it is something the client wrote. A client talking straight to a worker
is counted by its own address whatever it sends.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from django.conf import settings

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class TrustedProxies:
    """The peers whose X-Forwarded-For is believed."""

    any: bool = False
    networks: tuple[Network, ...] = ()

    @classmethod
    def parse(cls, entries: Iterable[str]) -> TrustedProxies:
        """From FORWARDED_ALLOW_IPS' entries; ValueError names an entry that is neither
        `*`, an address nor a network."""
        networks = []
        for entry in (entry.strip() for entry in entries):
            if entry == "*":
                return cls(any=True)
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                raise ValueError(
                    f"FORWARDED_ALLOW_IPS: {entry!r} is not an address, a network or *"
                ) from None
        return cls(networks=tuple(networks))

    def trusts(self, peer: str | None) -> bool:
        if self.any:
            return True
        if not peer or not self.networks:
            return False
        try:
            address = ipaddress.ip_address(peer)
        except ValueError:  # a Unix socket's peer, say
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in network for network in self.networks)


@functools.lru_cache(maxsize=4)
def _trusted(entries: tuple[str, ...]) -> TrustedProxies:
    return TrustedProxies.parse(entries)


def trusted_proxies() -> TrustedProxies:
    """The proxies the settings name (FORWARDED_ALLOW_IPS)."""
    return _trusted(tuple(settings.FORWARDED_ALLOW_IPS))


def last_forwarded(forwarded_for: str | None) -> str | None:
    """X-Forwarded-For's last entry, the one the nearest proxy wrote, or None."""
    last = (forwarded_for or "").rsplit(",", 1)[-1].strip()
    return last or None


def client_address(peer: str | None, forwarded_for: str | None) -> str:
    """The address to count a request against: X-Forwarded-For's last entry when `peer`
    is a trusted proxy, else the peer's address ("-" when there is none)."""
    if forwarded_for and trusted_proxies().trusts(peer):
        last = last_forwarded(forwarded_for)
        if last:
            return last
    return peer or "-"
