"""The rules about users, kept out of the views so tests and the admin share them."""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterable
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.db import connection
from django.db.models import Max

from users import identity
from users.models import NAME_MAX_LENGTH, PlaygroundUser, validate_plain_text

MAX_ID_DIGITS = 10  # ids are database integers; a longer one names nobody
_CANONICAL_ID = re.compile(r"[1-9][0-9]{0,9}")


class UserNotFound(LookupError):
    """No playground user has that id (or the id is not a canonical positive integer)."""


class InvalidUserData(ValueError):
    """A request body that cannot become a user's new name; the message says why."""


def parse_id_user(raw: object) -> int | None:
    """The integer id behind an `id_user` as clients send it ("3" or 3), else None.

    Only the canonical decimal form counts, so "03", "3.0" and "abc" name nobody, and at
    most MAX_ID_DIGITS digits, so no id past a database integer's range is ever looked up.
    """
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int):
        return raw if 0 < raw < 10**MAX_ID_DIGITS else None
    if isinstance(raw, str) and _CANONICAL_ID.fullmatch(raw):
        return int(raw)
    return None


def user_get(*, id_user: object) -> PlaygroundUser:
    pk = parse_id_user(id_user)
    if pk is None:
        raise UserNotFound(id_user)
    try:
        return PlaygroundUser.objects.get(pk=pk)
    except PlaygroundUser.DoesNotExist as exc:
        raise UserNotFound(id_user) from exc


def user_list() -> list[PlaygroundUser]:
    return list(PlaygroundUser.objects.order_by("id"))


def user_names(id_users: Iterable[str]) -> dict[str, str]:
    """The names of these users by id_user, in one query; ids nobody has are left out.

    The SQL is written out rather than built by a queryset: every roster with ?hydrate=1
    asks this, and `filter(pk__in=...).values_list(...)` took 185 us a call where running
    its SQL through the cursor takes 33 us (bench/README.md, "Names for a roster").
    """
    keys = sorted({key for raw in id_users if (key := parse_id_user(raw)) is not None})
    if not keys:
        return {}
    quote = connection.ops.quote_name
    meta = PlaygroundUser._meta
    pk, name = quote(meta.pk.column), quote(meta.get_field("name").column)
    placeholders = ", ".join(["%s"] * len(keys))
    sql = f"SELECT {pk}, {name} FROM {quote(meta.db_table)} WHERE {pk} IN ({placeholders})"
    with connection.cursor() as cursor:
        cursor.execute(sql, keys)
        return {str(row_pk): row_name for row_pk, row_name in cursor.fetchall()}


def validate_rename_body(body: Any) -> str:
    """The stripped new name from a decoded JSON body, or InvalidUserData saying why."""
    if not isinstance(body, dict):
        raise InvalidUserData("Body must be a JSON object")
    unknown = sorted(set(body) - {"name"})
    if unknown:
        raise InvalidUserData(f"Unknown field(s): {', '.join(unknown)}")
    if "name" not in body:
        raise InvalidUserData('Field "name" is required')
    name = body["name"]
    if not isinstance(name, str):
        raise InvalidUserData('Field "name" must be a string')
    name = name.strip()
    if not name:
        raise InvalidUserData('Field "name" must not be empty')
    if len(name) > NAME_MAX_LENGTH:
        raise InvalidUserData(f'Field "name" must be at most {NAME_MAX_LENGTH} characters')
    try:
        validate_plain_text(name)
    except ValidationError as exc:
        raise InvalidUserData(f'Field "name" {exc.messages[0]}') from None
    return name


def user_rename(*, id_user: object, name: str) -> PlaygroundUser:
    """Give an existing user a new (already validated) name."""
    user = user_get(id_user=id_user)
    user.name = name
    user.save(update_fields=["name"])
    return user


class RenameForbidden(PermissionError):
    """Signed mode: the request does not prove to be the user it renames (nor staff)."""

    def __init__(self, message: str, *, credentials: bool = True) -> None:
        super().__init__(message)
        self.credentials = credentials  # False: none were sent at all (401, not 403)


def user_of_account(account: Any) -> PlaygroundUser | None:
    """The playground user a Django login is linked to (PlaygroundUser.account), or None."""
    if account is None or not getattr(account, "is_authenticated", False):
        return None
    return PlaygroundUser.objects.filter(account_id=account.pk).first()


def authorize_rename(*, id_user: str, bearer: str | None, account: Any) -> None:
    """Signed mode's rule for PUT /users/<id>: a Bearer token naming that same user, or a
    Django session of that user or of staff; RenameForbidden otherwise. A token that is
    present decides alone (a wrong token is refused even beside a staff session)."""
    if bearer is not None:
        try:
            token_user = identity.verify_token(bearer)
        except identity.InvalidIdentity as exc:
            raise RenameForbidden(str(exc)) from None
        if parse_id_user(token_user) != parse_id_user(id_user):
            raise RenameForbidden(f"The token is user {token_user}'s, not user {id_user}'s")
        return
    if account is None or not getattr(account, "is_authenticated", False):
        raise RenameForbidden(
            "Signed mode: send Authorization: Bearer <token> of this user", credentials=False
        )
    if account.is_staff:
        return
    mine = user_of_account(account)
    if mine is None or parse_id_user(id_user) != mine.id:
        raise RenameForbidden(f"Your login may rename only its own user, not user {id_user}")


OnlineCounts = Callable[[], "dict[str, int] | None"]


def _nobody_online() -> dict[str, int] | None:
    return None


_online_counts: list[OnlineCounts] = [_nobody_online]


def provide_online_counts(source: OnlineCounts) -> None:
    """Where `online_counts` asks: set by the rooms app (rooms.apps), which knows the
    cluster; users know nothing of rooms (pyproject.toml's import contracts)."""
    _online_counts[0] = source


def online_counts() -> dict[str, int] | None:
    """Sockets per id_user across the cluster, or None when that is unknown."""
    return _online_counts[0]()


RenameReach = Callable[[str], "int | None"]


def _reaches_nobody(id_user: str) -> int | None:
    return None


_rename_reach: list[RenameReach] = [_reaches_nobody]


def provide_rename_reach(source: RenameReach) -> None:
    """Where `rename_reach` asks: set by the rooms app (rooms.apps), as provide_online_counts."""
    _rename_reach[0] = source


def rename_reach(id_user: str) -> int | None:
    """How many room events a rename of `id_user` makes the cluster publish (one per room
    of that user's sockets on each worker), or None when that is unknown."""
    return _rename_reach[0](id_user)


def next_user_id() -> int:
    """The id a new user gets unless one is given: one past the largest."""
    largest = PlaygroundUser.objects.aggregate(largest=Max("id"))["largest"]
    return (largest or 0) + 1


def reset_to_seed_users() -> int:
    """Exactly the ten seed users again (manage.py reset_db); returns how many there are."""
    call_command("reset_db", verbosity=0, stdout=io.StringIO())
    return PlaygroundUser.objects.count()
