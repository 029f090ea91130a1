"""The playground's users: the identities sockets connect as."""

from __future__ import annotations

import re

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models

NAME_MAX_LENGTH = 255
# C0/C1 control characters (NUL included: PostgreSQL refuses it in text) and lone UTF-16
# surrogates (JSON's "\ud800" decodes to one; it cannot be encoded as UTF-8 for the page,
# the API or a Socket.IO frame).
_NOT_TEXT = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def validate_plain_text(value: str) -> None:
    """Names are text a page can show: no control characters, no invalid Unicode."""
    if _NOT_TEXT.search(value):
        raise ValidationError(
            "must not contain control characters or invalid Unicode (lone surrogates)",
            code="not_plain_text",
        )


class PlaygroundUser(models.Model):
    """One of the identities a socket can connect as; exposed as `id_user` (a string)."""

    id = models.PositiveIntegerField(primary_key=True)
    name = models.CharField(max_length=NAME_MAX_LENGTH, validators=[validate_plain_text])
    # The Django login that proves to be this user in signed mode (IDENTITY_MODE=signed):
    # the room page and POST /auth/token turn that login's session into this user's token.
    account = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="playground_user",
        help_text="The Django login that is this user when IDENTITY_MODE=signed.",
    )

    class Meta:
        ordering = ["id"]
        verbose_name = "playground user"

    def __str__(self) -> str:
        return f"{self.id} {self.name}"

    @property
    def id_user(self) -> str:
        return str(self.id)

    def as_json(self) -> dict[str, str]:
        return {"id_user": self.id_user, "name": self.name}
