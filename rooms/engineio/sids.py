"""Session ids that name the worker holding the session, signed so no client can pick it.

A long-polling request may land on any worker sharing the port; the sid says which one to
forward it to (`<random>.<owner>.<mac>`, URL-safe). The MAC (HMAC-SHA256, RFC 2104, cut to
96 bits) keeps a client from sending requests to a worker of its choosing, or from
guessing a session's id from another's: a sid that does not verify names no session.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

_MAC_BYTES = 12


def _mac(key: bytes, text: str) -> str:
    digest = hmac.new(key, text.encode(), hashlib.sha256).digest()[:_MAC_BYTES]
    return base64.urlsafe_b64encode(digest).decode("ascii")


def new_sid(owner: str, key: bytes) -> str:
    """A fresh sid for a session held by `owner` (a procid: letters, digits and dashes)."""
    text = f"{secrets.token_urlsafe(15)}.{owner}"
    return f"{text}.{_mac(key, text)}"


def owner_of(sid: str, key: bytes) -> str | None:
    """The worker a sid names, or None when it is not one of ours (forged, altered, or not
    long-polling's)."""
    text, _, mac = sid.rpartition(".")
    _, _, owner = text.partition(".")
    if not owner or len(sid) > 200 or not hmac.compare_digest(mac, _mac(key, text)):
        return None
    return owner
