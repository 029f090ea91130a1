from __future__ import annotations

from django.contrib import admin

from users.models import PlaygroundUser


@admin.register(PlaygroundUser)
class PlaygroundUserAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ["id", "name"]
    list_display_links = ["id", "name"]
    search_fields = ["name"]
    ordering = ["id"]
