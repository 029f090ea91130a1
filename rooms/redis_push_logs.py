"""redis-py's pub/sub debug line, no longer formatted for a logger that drops it.

redis-py 8.1's RESP3 parsers hand every pub/sub message to `handle_pubsub_push_response`,
which builds `"Push response: " + str(response)` before `logger.debug` checks the level:
the repr of each message's payload, for nothing. For a 1000-socket roster (four replies of
~22 KB each) that was 12% of the asking worker's CPU (py-spy `--gil`). Fixed upstream
(redis/redis-py#4230) after 8.1.0; drop this module when requirements.txt moves past it.
Speaking RESP2 instead avoided the cost but was taken back (README, performance).
"""

from __future__ import annotations

import logging
from typing import Any

from redis._parsers.hiredis import _AsyncHiredisParser
from redis._parsers.resp3 import _AsyncRESP3Parser

push_logger = logging.getLogger("push_response")
PARSERS = (_AsyncRESP3Parser, _AsyncHiredisParser)
"""redis-py's asyncio parsers of RESP3: its own, and hiredis's (used where hiredis is
installed, as requirements.txt has it); both have the same handler."""
STOCK_HANDLERS = {parser: parser.handle_pubsub_push_response for parser in PARSERS}
"""redis-py's own handlers, which `install` replaces (the tests compare them)."""


async def log_push_if_enabled(_parser: object, response: Any) -> Any:
    """The same debug line, formatted only where it will be emitted."""
    if push_logger.isEnabledFor(logging.DEBUG):
        push_logger.debug("Push response: %s", response)
    return response


def install() -> None:
    """Idempotent; parsers made from now on (each binds its handler when created) use it."""
    for parser in PARSERS:
        parser.handle_pubsub_push_response = log_push_if_enabled  # type: ignore[method-assign]
