"""Log filters and formats named by settings.LOGGING."""

from __future__ import annotations

import logging
import os

from pythonjsonlogger.json import JsonFormatter

_worker: dict[str, str | None] = {"procid": None}


def set_procid(procid: str) -> None:
    """This process's worker id, once its node has joined the cluster (rooms.runner.lifecycle)."""
    _worker["procid"] = procid


class WorkerFields(logging.Filter):
    """Every record says which process wrote it: the worker's procid once it joined the
    cluster (as /workers and the roster show it), else the pid."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.procid = _worker["procid"] or f"pid-{os.getpid()}"
        return True


class JsonLines(JsonFormatter):
    """LOG_FORMAT=json: one JSON object per line, a traceback included ("exc_info"): time,
    level, logger, message, procid, and what the call passed in `extra` (the socket or
    request a record is about)."""

    def __init__(self) -> None:
        super().__init__(
            "%(asctime)s %(levelname)s %(name)s %(message)s %(procid)s",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            timestamp=False,
        )


class SecurityRecordsAsWarnings(logging.Filter):
    """`django.security.*` records are about what a client sent (a Host header not in
    ALLOWED_HOSTS, a suspicious request): Django logs them at ERROR with a traceback,
    which anyone on the internet could repeat to flood the log and bury real errors. They
    are kept, as one WARNING line each."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.startswith("django.security.") and record.levelno > logging.WARNING:
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.exc_info, record.exc_text, record.stack_info = None, None, None
        return True
