"""`manage.py demo_accounts --password PW`: a Django login for each playground user, for
trying signed mode (IDENTITY_MODE=signed) in a browser. Created only when asked: the
accounts are `user<id_user>` (user1, user2, ...) with the one password given, linked to
their user (PlaygroundUser.account); existing ones get the password again."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction

from users.models import PlaygroundUser


class Command(BaseCommand):
    help = "Create a demo login user<id> for every playground user, linked to it."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--password", required=True, help="the password of every account")

    def handle(self, *args: Any, **options: Any) -> None:
        accounts = get_user_model()
        with transaction.atomic():
            users = list(PlaygroundUser.objects.select_for_update().order_by("id"))
            for user in users:
                account, _ = accounts.objects.get_or_create(username=f"user{user.id}")
                account.set_password(options["password"])
                account.save()
                PlaygroundUser.objects.filter(account=account).exclude(pk=user.pk).update(
                    account=None
                )
                # update(), not save(): a link is no rename for the rooms to hear of
                PlaygroundUser.objects.filter(pk=user.pk).update(account=account)
        self.stdout.write(self.style.SUCCESS(f"{len(users)} demo accounts: user1 ... user<N>"))
