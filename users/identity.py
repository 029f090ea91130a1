"""Identity tokens: who a client is, in signed mode (IDENTITY_MODE=signed).

A token is Django's timestamped signature of an id_user (django.core.signing.TimestampSigner,
keyed by SECRET_KEY) under a salt of its own, so no other signed value of the site (a
session, a password-reset link) can stand in for one. It is valid IDENTITY_TOKEN_MAX_AGE
seconds. Whether the user still exists is the caller's question (users.services), asked
after the signature: a lookup costs more than an HMAC.
"""

from __future__ import annotations

import re
from typing import Any

from django.conf import settings
from django.core import signing

SALT = "identity-playground.identity"
MAX_TOKEN_LENGTH = 200  # an id_user of ten digits, a timestamp and a signature fit in 70
# the canonical id_user users.services.parse_id_user accepts; a token only ever names one
_CANONICAL_ID = re.compile(r"[1-9][0-9]{0,9}")


class InvalidIdentity(ValueError):
    """Credentials that name nobody; the message says which rule they broke."""


class MissingToken(InvalidIdentity):
    pass


class PlainIdUser(InvalidIdentity):
    pass


class MalformedToken(InvalidIdentity):
    pass


class BadTokenSignature(InvalidIdentity):
    pass


class ExpiredToken(InvalidIdentity):
    pass


class TokenUserMismatch(InvalidIdentity):
    pass


def signed_mode() -> bool:
    return bool(settings.IDENTITY_MODE == "signed")


class _Signer(signing.TimestampSigner):
    """The identity salt, and a chosen issue time for tests (a token made in the past)."""

    def __init__(self, issued_at: float | None = None) -> None:
        super().__init__(salt=SALT)
        self.issued_at = issued_at

    def timestamp(self) -> str:
        if self.issued_at is None:
            return str(super().timestamp())
        return signing.b62_encode(int(self.issued_at))


def make_token(id_user: str, *, issued_at: float | None = None) -> str:
    """A token naming `id_user` (canonical, e.g. "3"), issued now or at `issued_at`."""
    if not _CANONICAL_ID.fullmatch(id_user):
        raise ValueError(f"not a canonical id_user: {id_user!r}")
    return _Signer(issued_at).sign(str(id_user))


def verify_token(token: object, *, max_age: int | None = None) -> str:
    """The id_user a token names, or InvalidIdentity saying why it names nobody: not a
    string, tampered or signed with another salt or key, older than `max_age` seconds
    (default IDENTITY_TOKEN_MAX_AGE). Does not look the user up."""
    if not isinstance(token, str) or not token:
        raise MalformedToken("Malformed token: a non-empty string is required")
    if len(token) > MAX_TOKEN_LENGTH:
        raise MalformedToken(f"Malformed token: longer than {MAX_TOKEN_LENGTH} characters")
    age = settings.IDENTITY_TOKEN_MAX_AGE if max_age is None else max_age
    try:
        value = _Signer().unsign(token, max_age=age)
    except signing.SignatureExpired as exc:  # a subclass of BadSignature: first
        raise ExpiredToken(f"Expired token: older than {age:g} seconds") from exc
    except signing.BadSignature as exc:
        raise BadTokenSignature(
            "Invalid token signature: tampered, or not an identity token of this server"
        ) from exc
    if not _CANONICAL_ID.fullmatch(value):
        raise MalformedToken("Malformed token: it names no id_user")
    return value


def connect_identity(auth: dict[str, Any], query_id_user: str | None) -> str:
    """The id_user of a Socket.IO CONNECT in signed mode: the one its `auth.token` names.

    A claimed id_user (auth or query) alone is refused; one beside a token must be the
    token's (a client confused about who it is should hear so, not be silently renamed).
    """
    claimed = auth.get("id_user", query_id_user)
    token = auth.get("token")
    if token is None:
        if claimed not in (None, ""):
            raise PlainIdUser(f"Plain id_user {claimed} refused: signed mode needs auth {{token}}")
        raise MissingToken('Missing token: signed mode needs auth {"token": "..."}')
    id_user = verify_token(token)
    if claimed not in (None, "") and str(claimed) != id_user:
        raise TokenUserMismatch(f"id_user {claimed} is not the token's user {id_user}")
    return id_user


def bearer_token(authorization: str) -> str | None:
    """The token of an `Authorization: Bearer <token>` header (RFC 6750 section 2.1)."""
    scheme, _, token = authorization.strip().partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None
