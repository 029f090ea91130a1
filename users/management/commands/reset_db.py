"""`manage.py reset_db`: migrate, drop every playground user, load the ten seed users."""

from __future__ import annotations

from typing import Any

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction

from users.models import PlaygroundUser


class Command(BaseCommand):
    help = "Migrate the database and restore exactly the ten seed users (fixtures/users.json)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--if-empty",
            action="store_true",
            help="Only migrate and seed when there are no users yet (keeps renames on restart).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        call_command("migrate", interactive=False, verbosity=0)
        if options["if_empty"] and PlaygroundUser.objects.exists():
            self.stdout.write("Users already present: left as they are.")
            return
        with transaction.atomic():
            PlaygroundUser.objects.all().delete()
            call_command("loaddata", "users", verbosity=0)
        count = PlaygroundUser.objects.count()
        self.stdout.write(self.style.SUCCESS(f"Reset done: {count} users."))
