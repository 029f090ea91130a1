"""System checks: a build that would serve broken room pages fails instead.

`collectstatic` runs the checks tagged `staticfiles` (Heroku's Python buildpack runs it at
build time and fails the build when it exits non-zero), and `check --deploy`, `migrate` and
`runcluster` run them all.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.apps import AppConfig
from django.contrib.staticfiles import finders
from django.core.checks import CheckMessage, Error, Tags, register

# The official Socket.IO browser client, which templates/rooms/room.html loads; it comes
# from node_modules/socket.io-client (settings.STATICFILES_DIRS), installed by `npm ci`.
BROWSER_CLIENT = "vendor/socket.io/socket.io.min.js"


@register(Tags.staticfiles)
def browser_client_installed(
    app_configs: Sequence[AppConfig] | None, **kwargs: Any
) -> list[CheckMessage]:
    """Error rooms.E001 when no static-files finder has the browser client.

    Django only warns (staticfiles.W004) about a STATICFILES_DIRS entry that does not
    exist; the build then succeeds, and with DEBUG off the manifest storage answers every
    room page with a 500 (no manifest entry for the client).
    """
    if finders.find(BROWSER_CLIENT):
        return []
    return [
        Error(
            f"the Socket.IO browser client {BROWSER_CLIENT} is missing: "
            "node_modules/socket.io-client is not installed, so every room page would fail.",
            hint="Run `npm ci` before collectstatic. On Heroku add the Node.js buildpack "
            "before the Python one (heroku buildpacks:add --index 1 heroku/nodejs), as "
            "app.json does.",
            id="rooms.E001",
        )
    ]
