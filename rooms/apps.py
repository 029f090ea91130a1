from __future__ import annotations

from django.apps import AppConfig


class RoomsConfig(AppConfig):
    name = "rooms"
    verbose_name = "Rooms and realtime"

    def ready(self) -> None:
        from rooms import signals  # noqa: F401  (connects the rename announcement)
