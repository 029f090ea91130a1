"""A cluster worker: daphne's command line on uvloop's event loop, with the server tuning.

daphne makes its event loop (the one Twisted's asyncio reactor runs on) when `daphne.server`
is imported, so the loop policy is set before that import. The server tuning
(rooms.server.tuning, as SERVER_TUNING says) is installed here and only here, before
daphne accepts its first connection, and so are the limits that are always on (request
bodies, request heads, proxy headers, every WebSocket frame against SOCKETIO_FRAME_RATE:
rooms.server.limits, request_heads, forwarded, ws_frame_budget); then the worker joins the
cluster as the reactor starts (rooms.runner.lifecycle), and exits with RECYCLE_EXIT_CODE
when it stopped to be recycled (rooms.runner.recycling). On STACKS_SIGNAL the worker writes
every thread's stack to its output, from the signal handler itself (faulthandler), so the
dump comes even while the event loop is blocked: the supervisor asks for it before it
SIGKILLs a worker that does not stop.
"""

from __future__ import annotations

import asyncio
import faulthandler
import os
import sys

import uvloop

from rooms.runner.supervisor import RECYCLE_EXIT_CODE, RESTARTS_VARIABLE, STACKS_SIGNAL

faulthandler.register(STACKS_SIGNAL, all_threads=True)
asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())

from daphne.cli import CommandLineInterface  # noqa: E402  (after the policy)
from django.conf import settings  # noqa: E402
from twisted.internet import reactor  # noqa: E402  (daphne.server installed it)

import identity_playground.asgi  # noqa: E402, F401  (sets Django up, as daphne will load it)
from identity_playground.client_address import trusted_proxies  # noqa: E402
from rooms.cluster.registry import worker_slot  # noqa: E402
from rooms.http.routing import served_without_django  # noqa: E402
from rooms.metrics.series import WORKER_RESTARTS  # noqa: E402
from rooms.runner import lifecycle  # noqa: E402
from rooms.runner.recycling import Recycling  # noqa: E402
from rooms.runtime import NODE  # noqa: E402
from rooms.server import forwarded, limits, request_heads, tuning, ws_frame_budget  # noqa: E402

limits.install(reactor, max_body_bytes=settings.HTTP_MAX_BODY_BYTES)
forwarded.install(trusted_proxies().trusts)
ws_frame_budget.install(
    reactor, frame_rate=settings.SOCKETIO_FRAME_RATE, frame_burst=2 * settings.SOCKETIO_FRAME_RATE
)
request_heads.install(
    reactor,
    deadline_s=settings.HTTP_HEAD_TIMEOUT_S,
    body_deadline_s=settings.HTTP_BODY_TIMEOUT_S,
    max_pipelined=settings.HTTP_MAX_PIPELINED_REQUESTS,
)
tuning.install(
    reactor,
    setting=settings.SERVER_TUNING,
    serves_without_django=served_without_django,
    silent_timeout=settings.HTTP_HEAD_TIMEOUT_S,
)
WORKER_RESTARTS.labels(str(worker_slot())).set(int(os.environ.get(RESTARTS_VARIABLE, "0")))
recycling = Recycling(
    growth=settings.WORKER_RECYCLE_RSS_GROWTH,
    idle_s=settings.WORKER_RECYCLE_IDLE_S,
    slot=worker_slot(),
)
lifecycle.run_with_reactor(reactor, NODE, recycling)
CommandLineInterface.entrypoint()
if recycling.requested:
    sys.exit(RECYCLE_EXIT_CODE)
