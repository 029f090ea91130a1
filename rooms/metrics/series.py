"""This worker's Prometheus series, on a registry of its own.

Each worker keeps its own figures in memory and GET /metrics gathers them from every worker
with the roster's scatter-gather (rooms.metrics.exposition), so no worker shares files
with another: prometheus-client's multiprocess mode needs a directory all processes write
to, which workers on several machines do not have. Names and units follow Prometheus'
conventions (https://prometheus.io/docs/practices/naming/): counters end in `_total`,
durations are in seconds.
"""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
)

PREFIX = "identity_playground"

# no `_created` series beside each counter and histogram: nothing here reads them
disable_created_metrics()  # type: ignore[no-untyped-call]

REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)  # process_resident_memory_bytes, process_cpu_seconds_total

SOCKETS = Gauge(
    f"{PREFIX}_sockets", "Socket.IO sockets connected to this worker.", registry=REGISTRY
)
ROOMS = Gauge(f"{PREFIX}_rooms", "Rooms this worker holds a socket in.", registry=REGISTRY)
CONNECTS = Counter(
    f"{PREFIX}_connects", "Socket.IO sockets that connected (CONNECT accepted).", registry=REGISTRY
)
DISCONNECTS = Counter(
    f"{PREFIX}_disconnects", "Socket.IO sockets that left, for any reason.", registry=REGISTRY
)
EVENTS_RECEIVED = Counter(
    f"{PREFIX}_events_received", "Socket.IO events received from clients.", registry=REGISTRY
)
EVENTS_DELIVERED = Counter(
    f"{PREFIX}_events_delivered",
    "Room events handed to this worker's sockets (one per receiving socket).",
    registry=REGISTRY,
)
ROSTER_REQUESTS = Counter(
    f"{PREFIX}_roster_requests",
    "Cluster rosters this worker gathered, by outcome: complete (every live worker "
    "answered), partial (one did not in time), declined (one could not answer).",
    ["outcome"],
    registry=REGISTRY,
)
GATHER_SECONDS = Histogram(
    f"{PREFIX}_gather_duration_seconds",
    "Time to gather one cluster query's answers, by query kind.",
    ["kind"],
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
    registry=REGISTRY,
)
WORKER_RESTARTS = Gauge(
    f"{PREFIX}_worker_restarts",
    "Times runcluster's supervisor restarted this worker's slot after an exit other than "
    "a recycle (the slot keeps the count; a restarted worker has a new procid).",
    ["slot"],
    registry=REGISTRY,
)
BUS_RECONNECTS = Counter(
    f"{PREFIX}_bus_reconnects",
    "Connections to Redis that the bus opened again after losing one, by role.",
    ["role"],
    registry=REGISTRY,
)
LIMIT_CLOSES = Counter(
    f"{PREFIX}_limit_closes",
    "Connections closed or refused by a hostile-client limit, by reason.",
    ["reason"],
    registry=REGISTRY,
)

POLLING_REQUESTS = Counter(
    f"{PREFIX}_polling_requests",
    "Long-polling GETs and POSTs for a session, by where they were served: here (the "
    "session's worker) or forwarded (landed on this worker, sent to the session's).",
    ["served"],
    registry=REGISTRY,
)

ROSTER_OUTCOMES = ("complete", "partial", "declined")
BUS_ROLES = ("publish", "subscribe")
LIMIT_REASONS = (
    "frame_rate",
    "byte_rate",
    "outgoing_buffer",
    "connections_per_address",
    "connect_refusals",
    "connect_attempts",
    "connect_timeout",
    "ping_timeout",
    "protocol_error",
)
for _outcome in ROSTER_OUTCOMES:  # every series is there from the start, at 0
    ROSTER_REQUESTS.labels(_outcome)
for _served in ("here", "forwarded"):
    POLLING_REQUESTS.labels(_served)
for _role in BUS_ROLES:
    BUS_RECONNECTS.labels(_role)
for _reason in LIMIT_REASONS:
    LIMIT_CLOSES.labels(_reason)
