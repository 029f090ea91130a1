"""The one seam through which daphne, Twisted and autobahn internals are changed.

Each patch here replaces one piece of another project's internals for a measured gain
(bench/README.md, "Server tuning", has a row per patch: what it replaces, why, and its A/B
figures). They are installed only by the worker's entry point (rooms.runner.worker_main),
never by importing the ASGI application, and only when:
- SERVER_TUNING asks for them (`on`: all, `off`: none, or a comma-separated list of names);
- the installed daphne, Twisted and autobahn are exactly the versions the patches were
  written against (PINNED, which requirements.txt pins too): any other version turns all
  tuning off with one warning, and the worker runs on the libraries' own code.
This package imports nothing of the application: what it needs of it is handed in.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from importlib import metadata
from typing import Any

logger = logging.getLogger(__name__)

PINNED = {"daphne": "4.2.3", "twisted": "26.10.0", "autobahn": "26.11.1", "txaio": "26.6.1"}

PATCHES = (
    "fast_http",
    "tcp_writes",
    "ws_frames",
    "autobahn_logs",
    "connection_cycles",
)

active: frozenset[str] = frozenset()
"""The patches installed in this process (empty until `install`)."""


def wanted(setting: str) -> frozenset[str]:
    """The patch names a SERVER_TUNING value asks for; raises ValueError for unknown ones."""
    value = setting.strip().lower()
    if value in ("on", "true", "1", "yes", "all"):
        return frozenset(PATCHES)
    if value in ("off", "false", "0", "no", "none", ""):
        return frozenset()
    names = frozenset(name.strip() for name in value.split(",") if name.strip())
    unknown = names - set(PATCHES)
    if unknown:
        raise ValueError(f"SERVER_TUNING: unknown patches {sorted(unknown)}; known: {PATCHES}")
    return names


def version_mismatches(
    versions: Callable[[str], str] = metadata.version,
) -> list[str]:
    """`name installed X, patches written for Y` for every pinned library that differs."""
    found = []
    for name, pinned in PINNED.items():
        try:
            installed = versions(name)
        except metadata.PackageNotFoundError:
            installed = "none"
        if installed != pinned:
            found.append(f"{name} {installed} installed, tuning written for {pinned}")
    return found


def install(
    reactor: Any,
    *,
    setting: str,
    serves_without_django: Callable[[bytes], bool],
    silent_timeout: float | None = None,
    versions: Callable[[str], str] = metadata.version,
) -> frozenset[str]:
    """Install what `setting` asks for, if the versions match; returns what was installed.
    `silent_timeout`: how long fast_http keeps a connection that has sent nothing."""
    global active
    names = wanted(setting)
    mismatches = version_mismatches(versions) if names else []
    if mismatches:
        logger.warning("server tuning off: %s", "; ".join(mismatches))
        names = frozenset()
    _install(names, reactor, serves_without_django, silent_timeout)
    active = names
    return names


def _install(
    names: Iterable[str],
    reactor: Any,
    serves_without_django: Callable[[bytes], bool],
    silent_timeout: float | None,
) -> None:
    # imported here: each of these imports daphne, Twisted or autobahn
    from rooms.server import (
        autobahn_logs,
        connection_cycles,
        fast_http,
        tcp_writes,
        ws_frames,
    )

    installers: dict[str, Callable[[], None]] = {
        "fast_http": lambda: fast_http.install(
            reactor, serves_without_django, silent_timeout=silent_timeout
        ),
        "tcp_writes": tcp_writes.install,
        "ws_frames": ws_frames.install,
        "autobahn_logs": autobahn_logs.install,
        "connection_cycles": connection_cycles.install,
    }
    for name in PATCHES:
        if name in names:
            installers[name]()
