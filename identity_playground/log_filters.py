"""Log filters named by settings.LOGGING."""

from __future__ import annotations

import logging


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
