"""Twisted's own access log, not formatted for nobody.

Every request daphne serves ends in Twisted's `HTTPFactory.log`, which formats a
combined-log line (dates, escaping) and writes it to Twisted's log. daphne sends that log
nowhere at verbosity 0-1 and to the `daphne.server` logger above that, which our LOGGING
holds at WARNING: the line is never seen, yet formatting it costs about 5% of a worker's
CPU on plain HTTP requests (py-spy; bench/README.md, "Server tuning"). Here it is formatted
only when that logger would show it. daphne's own access log (`runcluster --access-log`)
is separate and unaffected.
"""

from __future__ import annotations

import logging
from typing import Any

from daphne.http_protocol import HTTPFactory
from twisted.web import http

STOCK_LOG = http.HTTPFactory.log
shown_by = logging.getLogger("daphne.server")


def log_if_shown(factory: Any, request: Any) -> None:
    if shown_by.isEnabledFor(logging.INFO):
        STOCK_LOG(factory, request)


def install() -> None:
    """Idempotent; daphne's factory only."""
    HTTPFactory.log = log_if_shown
