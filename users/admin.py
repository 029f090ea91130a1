from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from users import services
from users.models import PlaygroundUser


@admin.register(PlaygroundUser)
class PlaygroundUserAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ["id", "name", "account"]
    list_display_links = ["id", "name"]
    search_fields = ["name"]
    ordering = ["id"]
    autocomplete_fields = ["account"]
    actions = ["reset_to_seed_users"]

    def get_list_display(self, request: HttpRequest) -> list[Any]:
        """The columns, with "online now" asked of the cluster once per page (one
        scatter-gather, not one per row); "?" where the cluster cannot be asked."""
        counts = services.online_counts()

        @admin.display(description="online now")
        def online_now(user: PlaygroundUser) -> str:
            return "?" if counts is None else str(counts.get(user.id_user, 0))

        return [*self.list_display, online_now]

    def get_changeform_initial_data(self, request: HttpRequest) -> dict[str, Any]:
        """A new user gets the next free id without typing it (it can still be changed)."""
        return {"id": services.next_user_id(), **super().get_changeform_initial_data(request)}

    @admin.action(description="Reset to the ten seed users (whatever is selected)")
    def reset_to_seed_users(self, request: HttpRequest, queryset: QuerySet[PlaygroundUser]) -> None:
        count = services.reset_to_seed_users()
        self.message_user(request, f"Reset done: {count} users.", messages.SUCCESS)
