"""A cluster worker: daphne's command line, on uvloop's event loop.

daphne makes its event loop (the one Twisted's asyncio reactor runs on) when `daphne.server`
is imported, so the loop policy is set before that import.
"""

from __future__ import annotations

import asyncio

import uvloop

asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())

from daphne.cli import CommandLineInterface  # noqa: E402  (after the policy)

CommandLineInterface.entrypoint()
