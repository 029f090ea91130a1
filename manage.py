#!/usr/bin/env python
"""Django's command-line utility for identity-playground."""

from __future__ import annotations

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "identity_playground.settings")
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line

    try:
        settings.INSTALLED_APPS  # noqa: B018  (imports the settings module)
    except ImproperlyConfigured as exc:
        # A deploy missing a variable (SECRET_KEY with DEBUG off) is told so in one line,
        # not in a traceback through Django's command loader.
        sys.exit(f"manage.py: {exc}")
    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
