"""Settings, all read from the environment in this one place (see .env.example).

Every variable has a working default but one: DEBUG is off unless set, so a deploy that
forgets it neither shows debug pages nor signs with the public development key, and with
DEBUG off SECRET_KEY is required. Development (`make run`, the tests) sets DEBUG=on and
then runs with nothing else set.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import environ
from django.core.exceptions import ImproperlyConfigured

from identity_playground.client_address import TrustedProxies

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
if (BASE_DIR / ".env").exists():
    environ.Env.read_env(BASE_DIR / ".env")

DEBUG = env.bool("DEBUG", default=False)

_DEV_SECRET_KEY = "django-insecure-identity-playground-development-only"
SECRET_KEY = env.str("SECRET_KEY", default=_DEV_SECRET_KEY if DEBUG else "")
if not SECRET_KEY:
    raise ImproperlyConfigured(
        "SECRET_KEY must be set when DEBUG is off (e.g. SECRET_KEY=$(openssl rand -hex 32)); "
        "DEBUG=on runs with a development key"
    )

ALLOWED_HOSTS: list[str] = env.list(
    "ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"] if DEBUG else []
)
CSRF_TRUSTED_ORIGINS: list[str] = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "daphne",  # first, so `manage.py runserver` serves ASGI (WebSockets included)
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "channels",
    "users",
    "rooms",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "identity_playground.urls"
ASGI_APPLICATION = "identity_playground.asgi.application"
APPEND_SLASH = False  # /users and /<room>/users are exact paths, as in the contract

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]


def sqlite_options_for_many_processes() -> dict[str, Any]:
    """SQLite tuned for several worker processes writing one file.

    WAL lets readers run beside a writer; IMMEDIATE takes the write lock at BEGIN so two
    writers queue on the busy timeout instead of failing mid-transaction with
    "database is locked".
    """
    return {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
    }


DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"].setdefault("OPTIONS", {}).update(sqlite_options_for_many_processes())
else:
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
# Keep connections between requests: every Socket.IO CONNECT looks its user up, and opening
# a connection (with SQLite's PRAGMAs) per lookup was the largest cost of a connect.
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=600)

FIXTURE_DIRS = [BASE_DIR / "fixtures"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [
    BASE_DIR / "static",
    # The official Socket.IO browser client, served as /static/vendor/socket.io/socket.io.min.js
    # from the pinned npm package (package-lock.json) rather than a copy or a CDN: the room
    # page works offline and the client is upgraded with the other pinned dependencies.
    # Without `npm ci` the check rooms.E001 (rooms/checks.py) fails collectstatic.
    ("vendor/socket.io", BASE_DIR / "node_modules/socket.io-client/dist"),
]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}


# ---- Redis and the channel layer -------------------------------------------------------


BUS_LAYER = "rooms.bus.layer.BusChannelLayer"


def channel_layers_for(
    redis_urls: list[str],
    prefix: str,
    *,
    backend: str = BUS_LAYER,
    capacity: int = 1000,
    tls_verify: bool = True,
    tls_ca_file: str = "",
) -> dict[str, Any]:
    """The layer the workers listen on, so a `group_send` to a room's group reaches its
    sockets: `backend` on the Redis servers (the bus's layer, rooms.bus.layer, or one of
    channels_redis's), or, without Redis, the single-process layer (rooms.bus.local)."""
    if not redis_urls:
        return {"default": {"BACKEND": "rooms.bus.local.SingleProcessChannelLayer"}}
    config: dict[str, Any] = {"hosts": redis_urls, "prefix": prefix, "capacity": capacity}
    if backend == BUS_LAYER:
        config.update(tls_verify=tls_verify, tls_ca_file=tls_ca_file)
    return {"default": {"BACKEND": backend, "CONFIG": config}}


def embedded_redis_url(path: str) -> str:
    """The URL runcluster wrote at `path` for the Redis it embeds while it runs, or ""."""
    try:
        return Path(path).read_text().strip() if path else ""
    except OSError:
        return ""


# where runcluster, started with no REDIS_URL, writes the URL of the Redis it embeds (and
# removes it at exit), so that `manage.py` commands of this checkout reach that cluster;
# empty: neither written nor read
EMBEDDED_REDIS_FILE: str = env.str("EMBEDDED_REDIS_FILE", default=str(BASE_DIR / ".run/redis-url"))
# One URL, or several separated by commas for a sharded channel layer.
REDIS_URL_CONFIGURED: bool = bool(env.str("REDIS_URL", default=""))
REDIS_URL: str = env.str("REDIS_URL", default="") or embedded_redis_url(EMBEDDED_REDIS_FILE)
REDIS_URLS: list[str] = [url.strip() for url in REDIS_URL.split(",") if url.strip()]
CHANNEL_PREFIX: str = env.str("CHANNEL_PREFIX", default="ip")
# verify the certificate of rediss:// servers; off for Heroku Redis (self-signed certificates)
REDIS_TLS_VERIFY: bool = env.bool("REDIS_TLS_VERIFY", default=True)
# a PEM file of CAs to verify rediss:// servers against, instead of the system's
REDIS_TLS_CA_FILE: str = env.str("REDIS_TLS_CA_FILE", default="")
# the channel layer's class, dotted: the bus's (the default), or channels_redis's
# channels_redis.pubsub.RedisPubSubChannelLayer or channels_redis.core.RedisChannelLayer,
# which run the whole cluster too (rooms.cluster.layer_bus; README, "Channel layers")
CHANNEL_LAYER_BACKEND: str = env.str("CHANNEL_LAYER_BACKEND", default=BUS_LAYER)
# messages a channel holds unreceived; past it a send raises ChannelFull and a group_send
# drops the message (channels' layer spec). On channels_redis's RedisChannelLayer all the
# channels of one process share it, the node's room channels included: at Channels' 100 a
# burst of 1000 sockets joining one room lost 11% of its socket-connected events, at 1000
# none (bench/README.md, "Channel layers")
CHANNEL_LAYER_CAPACITY: int = env.int("CHANNEL_LAYER_CAPACITY", default=1000)
CHANNEL_LAYERS = channel_layers_for(
    REDIS_URLS,
    CHANNEL_PREFIX,
    backend=CHANNEL_LAYER_BACKEND,
    capacity=CHANNEL_LAYER_CAPACITY,
    tls_verify=REDIS_TLS_VERIFY,
    tls_ca_file=REDIS_TLS_CA_FILE,
)
# bytes one bus connection may have queued for a Redis that does not read them before the
# write fails and the connection is dropped (rooms.bus.connection.DEFAULT_MAX_OUTGOING)
BUS_MAX_OUTGOING_BYTES: int = env.int("BUS_MAX_OUTGOING_BYTES", default=16 * 1024 * 1024)
# room messages of departures (socket-disconnected) a worker keeps while Redis does not
# take them, to publish when it is back; beyond, the oldest are dropped
# (rooms.cluster.departures.DEFAULT_MAX_QUEUED)
BUS_MAX_HELD_DEPARTURES: int = env.int("BUS_MAX_HELD_DEPARTURES", default=1_000_000)

# plain: "LEVEL logger: message" lines (runcluster prefixes each worker's with [w<slot> <pid>]);
# json: one JSON object per line, for a log pipeline (identity_playground/log_filters.py)
LOG_FORMAT: str = env.str("LOG_FORMAT", default="plain")
if LOG_FORMAT not in ("plain", "json"):
    raise ImproperlyConfigured(f"LOG_FORMAT must be plain or json, not {LOG_FORMAT!r}")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(levelname)s %(name)s: %(message)s"},
        "json": {"()": "identity_playground.log_filters.JsonLines"},
    },
    "filters": {
        "security_as_warnings": {"()": "identity_playground.log_filters.SecurityRecordsAsWarnings"},
        "worker_fields": {"()": "identity_playground.log_filters.WorkerFields"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["security_as_warnings", "worker_fields"],
        }
    },
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        # Django's DEFAULT_LOGGING (django/utils/log.py) gives `django` a console handler of
        # its own when DEBUG is on, and its records also propagate to the root one: each
        # would be printed twice. Without handlers here, they reach the root handler alone.
        "django": {"handlers": [], "propagate": True},
        "daphne": {"level": "WARNING"},
        "django.channels.server": {"level": "WARNING"},
    },
}

# ---- Identities ------------------------------------------------------------------------
# open: any client may connect as any id_user and rename anyone (the playground); signed:
# a CONNECT needs a token from users.identity and a rename that user's credentials
IDENTITY_MODE: str = env.str("IDENTITY_MODE", default="open")
if IDENTITY_MODE not in ("open", "signed"):
    raise ImproperlyConfigured(f"IDENTITY_MODE must be open or signed, not {IDENTITY_MODE!r}")
# seconds an identity token stays valid after it was made
IDENTITY_TOKEN_MAX_AGE: int = env.int("IDENTITY_TOKEN_MAX_AGE", default=86400)
# where the room page sends a visitor who is not logged in (signed mode)
LOGIN_URL = "login"

# ---- Socket.IO and the cluster ---------------------------------------------------------
SOCKETIO_PING_INTERVAL_MS: int = env.int("SOCKETIO_PING_INTERVAL_MS", default=25000)
SOCKETIO_PING_TIMEOUT_MS: int = env.int("SOCKETIO_PING_TIMEOUT_MS", default=20000)
SOCKETIO_MAX_PAYLOAD: int = env.int("SOCKETIO_MAX_PAYLOAD", default=1_000_000)
SOCKETIO_CONNECT_TIMEOUT_S: float = env.float("SOCKETIO_CONNECT_TIMEOUT_S", default=45.0)
# identity-change events one socket may send per second before they are dropped
SOCKETIO_IDENTITY_CHANGE_RATE: float = env.float("SOCKETIO_IDENTITY_CHANGE_RATE", default=20.0)
# what one socket's identity-changes may make the cluster carry: each costs its frame's
# UTF-8 bytes times the rooms it goes to, from a bucket refilled this much a second and holding
# as much; an event the bucket cannot cover is dropped. 900 KB sent to 100 rooms would put
# 90 MB through Redis; a normal client (a name, tens of rooms) stays far below.
SOCKETIO_FANOUT_BYTES_PER_SECOND: int = env.int(
    "SOCKETIO_FANOUT_BYTES_PER_SECOND", default=1_000_000
)
# rooms one socket may be in at once; a join beyond it is refused in its ack
SOCKETIO_MAX_ROOMS_PER_SOCKET: int = env.int("SOCKETIO_MAX_ROOMS_PER_SOCKET", default=100)
# frames (events, acks, pings...) one connection may send per second, in bursts of twice
# that; past it the client gets an `error` event and is disconnected
SOCKETIO_FRAME_RATE: float = env.float("SOCKETIO_FRAME_RATE", default=50.0)
# characters of frames one connection may send per second, in bursts of one frame of
# SOCKETIO_MAX_PAYLOAD; past it the client gets an `error` event and is disconnected
SOCKETIO_BYTE_RATE: float = env.float("SOCKETIO_BYTE_RATE", default=100_000.0)
# CONNECTs refused on one connection before it is closed
SOCKETIO_MAX_CONNECT_ATTEMPTS: int = env.int("SOCKETIO_MAX_CONNECT_ATTEMPTS", default=3)
# CONNECTs refused per client address per minute, per worker (all at once if they come so);
# past it its connections are closed after a CONNECT_ERROR saying so, and new ones refused
# at the handshake until the minute's budget refills; 0: no limit
SOCKETIO_CONNECT_REFUSALS_PER_MINUTE: int = env.int(
    "SOCKETIO_CONNECT_REFUSALS_PER_MINUTE", default=600
)
# open WebSocket connections from one client address, per worker (raise it behind a NAT
# or a proxy that does not forward the client's address)
SOCKETIO_MAX_CONNECTIONS_PER_ADDRESS: int = env.int(
    "SOCKETIO_MAX_CONNECTIONS_PER_ADDRESS", default=1000
)
# bytes a socket may have waiting to be sent (a client that does not read); past it the
# socket is closed and announced as disconnected
SOCKETIO_MAX_BUFFERED_BYTES: int = env.int("SOCKETIO_MAX_BUFFERED_BYTES", default=1 << 20)
# a secret an operator's tool sends to read /workers' details (pids, host, memory) with
# DEBUG off: `Authorization: Bearer <token>`, or HTTP Basic with it as the password. Empty:
# only staff sessions see them. Use a long random value (e.g. `openssl rand -hex 32`)
WORKERS_TOKEN: str = env.str("WORKERS_TOKEN", default="")
# a secret a Prometheus scraper sends to read /metrics with DEBUG off, as WORKERS_TOKEN is
# sent. Empty: only staff sessions read it
METRICS_TOKEN: str = env.str("METRICS_TOKEN", default="")
# how long a roster waits for a live but silent (hung) worker
CLUSTER_GATHER_DEADLINE: float = env.float("CLUSTER_GATHER_DEADLINE", default=1.0)
# how often each worker beats its heartbeat and looks for dead peers (worker-down latency)
CLUSTER_JANITOR_INTERVAL: float = env.float("CLUSTER_JANITOR_INTERVAL", default=1.0)
# a worker whose heartbeat is older than this is dead even if Redis still counts its
# subscription (a partitioned host keeps its TCP connections open)
CLUSTER_WORKER_TTL: float = env.float("CLUSTER_WORKER_TTL", default=5.0)
# a worker's cyclic garbage collector (gc.set_threshold), set once it has joined the cluster
# and frozen its start-up heap: the trade between full-collection pauses and memory held by
# dead connections (bench/README.md, "Garbage-collector pauses")
WORKER_GC_THRESHOLDS: list[int] = env.list("WORKER_GC_THRESHOLDS", cast=int, default=[700, 10, 10])
# seconds between handing glibc's free heap pages back to the kernel (malloc_trim) in each
# worker; 0 turns it off (bench/README.md, "Where the soak's memory goes")
WORKER_MALLOC_TRIM_INTERVAL: float = env.float("WORKER_MALLOC_TRIM_INTERVAL", default=10.0)
# a runcluster worker that has held no connection for WORKER_RECYCLE_IDLE_S seconds while its
# RSS is more than WORKER_RECYCLE_RSS_GROWTH (a fraction) above its start-up's is replaced by
# a fresh process, which gives back what CPython's allocator keeps after a burst
# (rooms/runner/recycling.py); a growth of 0 turns it off
WORKER_RECYCLE_RSS_GROWTH: float = env.float("WORKER_RECYCLE_RSS_GROWTH", default=0.1)
WORKER_RECYCLE_IDLE_S: float = env.float("WORKER_RECYCLE_IDLE_S", default=30.0)

# daphne/Twisted/autobahn patches installed by each worker (rooms/server/tuning.py): on, off,
# or a comma-separated list of patch names (bench/README.md, "Server tuning")
SERVER_TUNING: str = env.str("SERVER_TUNING", default="on")
# the largest request body a worker reads (rooms/server/limits.py): a larger Content-Length is
# refused with 413 before the body is read, a chunked body is cut off there. 1 MiB holds the
# largest body any endpoint takes (PUT /users/<id> caps its JSON at 64 KiB, the admin's forms
# are a few kB) with room to spare, while a few concurrent uploads cannot exhaust a worker.
HTTP_MAX_BODY_BYTES: int = env.int("HTTP_MAX_BODY_BYTES", default=1024 * 1024)
# seconds a request head (a WebSocket handshake included) may take to arrive, however it
# trickles in, and a kept-alive connection may stay idle between requests (408 / closed)
HTTP_HEAD_TIMEOUT_S: float = env.float("HTTP_HEAD_TIMEOUT_S", default=10.0)
# seconds a request body may take to arrive after its head, however it trickles in (408)
HTTP_BODY_TIMEOUT_S: float = env.float("HTTP_BODY_TIMEOUT_S", default=30.0)
# requests one connection answers in a row that were sent before the previous answer was
# written (pipelined); the last gets `Connection: close` and the connection is closed
HTTP_MAX_PIPELINED_REQUESTS: int = env.int("HTTP_MAX_PIPELINED_REQUESTS", default=100)
# PUT/PATCH /users/<id> one client address may send a minute, per worker (bursts of as
# many); past it 429 with Retry-After. 0: no limit
HTTP_RENAMES_PER_MINUTE_PER_ADDRESS: int = env.int(
    "HTTP_RENAMES_PER_MINUTE_PER_ADDRESS", default=60
)
# the proxies in front whose X-Forwarded-For names the client (comma-separated addresses or
# networks, `*` for any): only a connection from one of them is counted, by the per-address
# limits, against X-Forwarded-For's last entry, every other against its peer's address.
# None by default, DEBUG or not: the HTTPS settings below do not imply a proxy. Heroku's
# router connects from addresses not known in advance, so Heroku apps set `*` (app.json)
FORWARDED_ALLOW_IPS: list[str] = env.list("FORWARDED_ALLOW_IPS", default=[])
try:
    TrustedProxies.parse(FORWARDED_ALLOW_IPS)
except ValueError as exc:
    raise ImproperlyConfigured(str(exc)) from None
# room events the renames of one client address may make the cluster publish a minute, per
# worker: a rename costs one per room of the user's sockets on each worker (a user with
# 1,800 sockets in 100 rooms each: 180,000 messages, 55 MB through Redis). One costing
# more than this passes on a full budget, and the address then waits in proportion;
# past it 429 with Retry-After. 0: no limit
HTTP_RENAME_FANOUT_PER_MINUTE_PER_ADDRESS: int = env.int(
    "HTTP_RENAME_FANOUT_PER_MINUTE_PER_ADDRESS", default=10_000
)

# ---- Production: HTTPS behind Heroku's router (begin) ----------------------------------
# `manage.py check --deploy` is clean with DEBUG off and these defaults. Each setting is on
# by default when DEBUG is off and off when DEBUG is on; each can be set on its own through
# the environment, e.g. SECURE_SSL_REDIRECT=off to run production settings locally over
# plain HTTP (tests/deploy does).
_SECURE_BY_DEFAULT = not DEBUG
# Heroku's router terminates TLS and tells the dyno the client's scheme in
# X-Forwarded-Proto. Trust that header only behind such a proxy (a client reaching the app
# directly could otherwise claim https): SECURE_PROXY_SSL_HEADER=off elsewhere.
SECURE_PROXY_SSL_HEADER: tuple[str, str] | None = (
    ("HTTP_X_FORWARDED_PROTO", "https")
    if env.bool("SECURE_PROXY_SSL_HEADER", default=_SECURE_BY_DEFAULT)
    else None
)
SECURE_SSL_REDIRECT: bool = env.bool("SECURE_SSL_REDIRECT", default=_SECURE_BY_DEFAULT)
SESSION_COOKIE_SECURE: bool = env.bool("SESSION_COOKIE_SECURE", default=_SECURE_BY_DEFAULT)
CSRF_COOKIE_SECURE: bool = env.bool("CSRF_COOKIE_SECURE", default=_SECURE_BY_DEFAULT)
# HSTS starts at one hour, so a mistake wears off quickly; raise SECURE_HSTS_SECONDS to
# 31536000 once every host under the domain serves HTTPS (the preload list requires a
# year; SECURE_HSTS_PRELOAD only adds the directive, submitting the domain is manual).
SECURE_HSTS_SECONDS: int = env.int("SECURE_HSTS_SECONDS", default=3600 if _SECURE_BY_DEFAULT else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS: bool = env.bool(
    "SECURE_HSTS_INCLUDE_SUBDOMAINS", default=_SECURE_BY_DEFAULT
)
SECURE_HSTS_PRELOAD: bool = env.bool("SECURE_HSTS_PRELOAD", default=_SECURE_BY_DEFAULT)
# Where `collectstatic` writes (Heroku runs it at build time); the tests use their own.
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(STATIC_ROOT)))
# ---- Production: HTTPS behind Heroku's router (end) ------------------------------------
