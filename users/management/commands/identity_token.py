"""`manage.py identity_token <id_user>`: print a token for that user (signed mode's CONNECT
auth and Bearer header), alone on the last line, for scripts and tests."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from users import identity, services


class Command(BaseCommand):
    help = "Print an identity token for an existing playground user (IDENTITY_MODE=signed)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("id_user", help="the user's id_user, e.g. 3")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            user = services.user_get(id_user=options["id_user"])
        except services.UserNotFound:
            raise CommandError(f"Unknown id_user: {options['id_user']}") from None
        self.stdout.write(identity.make_token(user.id_user))
