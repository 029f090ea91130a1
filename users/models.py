"""The playground's users: the identities sockets connect as."""

from __future__ import annotations

from django.db import models

NAME_MAX_LENGTH = 255


class PlaygroundUser(models.Model):
    """One of the identities a socket can connect as; exposed as `id_user` (a string)."""

    id = models.PositiveIntegerField(primary_key=True)
    name = models.CharField(max_length=NAME_MAX_LENGTH)

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
