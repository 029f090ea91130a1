from __future__ import annotations

from django.apps import AppConfig


class RoomsConfig(AppConfig):
    name = "rooms"
    verbose_name = "Rooms and realtime"

    def ready(self) -> None:
        # registers the system checks; connects the rename announcement
        from rooms import checks, signals  # noqa: F401
