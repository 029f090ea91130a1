from __future__ import annotations

from django.apps import AppConfig


class UsersConfig(AppConfig):
    name = "users"
    verbose_name = "Playground users"
