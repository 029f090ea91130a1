"""The one error type for what the peer did wrong (as h11's and wsproto's RemoteProtocolError)."""

from __future__ import annotations


class ProtocolError(ValueError):
    """The peer sent a frame we cannot or will not decode; close its connection."""
