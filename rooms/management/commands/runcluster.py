"""`manage.py runcluster --workers N --port P [--host H]`: one port, N daphne workers."""

from __future__ import annotations

import asyncio
import os
import tempfile
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from rooms.runner.embedded_redis import EmbeddedRedis
from rooms.runner.supervisor import (
    ClusterConfig,
    PortInUse,
    Supervisor,
    default_workers,
    listening_socket,
    stable_run_from_environ,
    stop_grace_from_environ,
)


class Command(BaseCommand):
    help = "Start N daphne workers sharing one port, restarting any that dies."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--workers", type=int, default=default_workers())
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", 8000)))
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument(
            "--proxy-headers",
            action="store_true",
            help="trust X-Forwarded-For/-Proto (behind Heroku's router or a reverse proxy)",
        )
        parser.add_argument(
            "--access-log", action="store_true", help="log every request and WebSocket event"
        )
        parser.add_argument(
            "--application",
            default=ClusterConfig.application,
            help="the ASGI application the workers serve (module:attribute)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        config = ClusterConfig(
            workers=max(1, options["workers"]),
            host=options["host"],
            port=options["port"],
            websocket_max_message_size=settings.SOCKETIO_MAX_PAYLOAD,
            proxy_headers=options["proxy_headers"],
            access_log=options["access_log"],
            application=options["application"],
        )
        try:
            # bound first: a port in use is reported before an embedded Redis is started
            listener = listening_socket(config.host, config.port)
        except PortInUse as exc:
            self.stderr.write(f"runcluster: {exc}")
            raise SystemExit(1) from None
        except OSError as exc:  # e.g. a port below 1024 without the privilege, an unknown host
            self.stderr.write(f"runcluster: cannot listen on {config.host}:{config.port}: {exc}")
            raise SystemExit(1) from None
        # the workers' Redis is the one configured or embedded here, never another
        # cluster's found in EMBEDDED_REDIS_FILE
        env = {**os.environ, "EMBEDDED_REDIS_FILE": ""}
        embedded = None
        if not settings.REDIS_URL_CONFIGURED and config.workers > 1:
            embedded = EmbeddedRedis(
                Path(tempfile.mkdtemp(prefix="identity-playground-redis-")),
                url_file=settings.EMBEDDED_REDIS_FILE,
            )
            env["REDIS_URL"] = embedded.url
            self.stdout.write(
                f"[runcluster] no REDIS_URL: started an embedded Redis at {embedded.url}"
                + (f" (in {settings.EMBEDDED_REDIS_FILE})" if settings.EMBEDDED_REDIS_FILE else "")
            )
        try:
            supervisor = Supervisor(
                config,
                env,
                listener,
                stop_grace=stop_grace_from_environ(),
                stable_run=stable_run_from_environ(),
            )
            asyncio.run(supervisor.run())
        finally:
            if embedded is not None:
                embedded.stop()
