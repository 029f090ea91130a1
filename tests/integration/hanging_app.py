"""The project's application in a worker whose stop hangs: a shutdown trigger that blocks.

For tests/integration/test_stuck_worker.py: daphne imports this module as the worker's
application, and Twisted runs the trigger when SIGTERM stops the reactor.
"""

from __future__ import annotations

import time

from twisted.internet import reactor

from identity_playground.asgi import application

__all__ = ["application"]


def hang_on_shutdown() -> None:
    time.sleep(60)


reactor.addSystemEventTrigger("before", "shutdown", hang_on_shutdown)  # type: ignore[attr-defined]
