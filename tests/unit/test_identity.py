"""Identity tokens (users.identity): what a token proves, and every way one names nobody."""

from __future__ import annotations

import time

import pytest
from django.core import signing
from pytest_django.fixtures import Settings

from users import identity


def test_a_token_names_its_user() -> None:
    """A fresh token verifies to the id_user it was made for."""
    assert identity.verify_token(identity.make_token("3")) == "3"


def test_a_token_is_valid_until_max_age_and_expired_after() -> None:
    """Validity is IDENTITY_TOKEN_MAX_AGE seconds from the issue time (a token made in the
    past stands in for a clock moved forward)."""
    made_100s_ago = identity.make_token("3", issued_at=time.time() - 100)
    assert identity.verify_token(made_100s_ago, max_age=200) == "3"
    with pytest.raises(identity.ExpiredToken, match="Expired token"):
        identity.verify_token(made_100s_ago, max_age=50)


def test_the_default_max_age_is_the_setting(settings: Settings) -> None:
    """Without max_age, IDENTITY_TOKEN_MAX_AGE decides."""
    token = identity.make_token("3", issued_at=time.time() - 100)
    settings.IDENTITY_TOKEN_MAX_AGE = 200
    assert identity.verify_token(token) == "3"
    settings.IDENTITY_TOKEN_MAX_AGE = 50
    with pytest.raises(identity.ExpiredToken):
        identity.verify_token(token)


@pytest.mark.parametrize(
    "tamper",
    [
        lambda t: "4" + t[1:],  # another user, same signature
        lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"),  # signature changed
        lambda t: t.rsplit(":", 1)[0],  # signature dropped
    ],
    ids=["user", "signature", "unsigned"],
)
def test_a_tampered_token_is_refused(tamper: object) -> None:
    """Changing any part of a token breaks its signature."""
    token = identity.make_token("3")
    with pytest.raises(identity.BadTokenSignature, match="Invalid token signature"):
        identity.verify_token(tamper(token))  # type: ignore[operator]


def test_a_token_signed_with_another_salt_or_key_is_refused() -> None:
    """Only this salt and SECRET_KEY: a value Django signed for another purpose (default
    salt, e.g. a cookie) or another server's key is no identity token."""
    with pytest.raises(identity.BadTokenSignature):
        identity.verify_token(signing.TimestampSigner().sign("3"))
    with pytest.raises(identity.BadTokenSignature):
        identity.verify_token(signing.TimestampSigner(salt="other").sign("3"))
    foreign = signing.TimestampSigner(key="another-server", salt=identity.SALT).sign("3")
    with pytest.raises(identity.BadTokenSignature):
        identity.verify_token(foreign)


@pytest.mark.parametrize("token", ["", None, 3, ["3"], "x" * 201, "junk"])
def test_junk_is_refused(token: object) -> None:
    """Anything but a signed string of ours names nobody."""
    with pytest.raises(identity.InvalidIdentity):
        identity.verify_token(token)


def test_a_signed_value_that_is_no_id_user_is_refused() -> None:
    """A correctly signed value must still be a canonical id_user."""
    token = signing.TimestampSigner(salt=identity.SALT).sign("03")
    with pytest.raises(identity.MalformedToken):
        identity.verify_token(token)
    with pytest.raises(ValueError):
        identity.make_token("03")


def test_connect_identity_needs_a_token() -> None:
    """A CONNECT without token, or with only a claimed id_user, is refused, saying which."""
    with pytest.raises(identity.MissingToken, match="Missing token"):
        identity.connect_identity({}, None)
    with pytest.raises(identity.PlainIdUser, match="Plain id_user 3"):
        identity.connect_identity({"id_user": "3"}, None)
    with pytest.raises(identity.PlainIdUser, match="Plain id_user 4"):
        identity.connect_identity({"room": "Maths"}, "4")


def test_connect_identity_is_the_tokens_user() -> None:
    """The token decides; an id_user beside it must agree with it."""
    token = identity.make_token("3")
    assert identity.connect_identity({"token": token, "room": "Maths"}, None) == "3"
    assert identity.connect_identity({"token": token, "id_user": "3"}, None) == "3"
    with pytest.raises(identity.TokenUserMismatch):
        identity.connect_identity({"token": token}, "4")


@pytest.mark.parametrize(
    ("header", "token"),
    [
        ("Bearer abc", "abc"),
        ("bearer  abc ", "abc"),
        ("Basic abc", None),
        ("Bearer", None),
        ("", None),
    ],
)
def test_bearer_token(header: str, token: str | None) -> None:
    """Authorization: Bearer <token> (RFC 6750 section 2.1); the scheme is case-insensitive."""
    assert identity.bearer_token(header) == token
