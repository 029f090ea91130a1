"""Which address a request came from, for limits counted per client address.

Behind a proxy (Heroku's router, nginx with `$proxy_add_x_forwarded_for`) the proxy
appends the address it accepted the connection from to X-Forwarded-For, so the LAST entry
is the one a client cannot choose; earlier entries are whatever the client sent. daphne's
`--proxy-headers` takes the first (daphne/utils.py `parse_x_forwarded_for`), which a client
can set to a new value on every request to dodge a per-address limit. A proxy is trusted
here exactly when the settings trust its scheme header (SECURE_PROXY_SSL_HEADER).
"""

from __future__ import annotations

from django.conf import settings


def client_address(peer: str | None, forwarded_for: str | None) -> str:
    """The address to count a request against: X-Forwarded-For's last entry behind a
    trusted proxy, else the peer's address ("-" when there is none)."""
    if forwarded_for and settings.SECURE_PROXY_SSL_HEADER:
        last = forwarded_for.rsplit(",", 1)[-1].strip()
        if last:
            return last
    return peer or "-"
