from __future__ import annotations

from django.apps import AppConfig


class RoomsConfig(AppConfig):
    name = "rooms"
    verbose_name = "Rooms and realtime"

    def ready(self) -> None:
        # registers the system checks; connects the rename announcement
        from rooms import checks, runtime, signals  # noqa: F401
        from users import services

        # the admin's "online now" column asks the cluster through this
        services.provide_online_counts(runtime.sockets_per_user)
        # the rename fan-out budget per address (users.views) asks the cluster through this
        services.provide_rename_reach(runtime.rename_reach)
