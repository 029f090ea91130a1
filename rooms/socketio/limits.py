"""Per-connection budgets: how much a client may ask of a worker, and how fast."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable


class TokenBucket:
    """At most `rate` takes per second on average, in bursts of up to `burst` (default:
    `rate`): a full bucket holds `burst` tokens and refills `rate` per second."""

    def __init__(
        self,
        rate: float,
        burst: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = rate
        self.burst = rate if burst is None else burst
        self.clock = clock
        self.tokens = self.burst
        self.updated = clock()

    def take(self, cost: float = 1) -> bool:
        """Take `cost` tokens if the bucket holds them, else nothing (a cost over the burst
        is never taken)."""
        self._refill()
        if self.tokens < cost:
            return False
        self.tokens -= cost
        return True

    def _refill(self) -> None:
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now


class ConnectionsPerAddress:
    """Open WebSocket connections of this worker by client address, against a cap: one
    address cannot take all of a worker's sockets (and memory)."""

    def __init__(self) -> None:
        self._open: Counter[str] = Counter()

    def admit(self, address: str, limit: int) -> bool:
        """Count one more connection from `address`, unless it already has `limit`."""
        if self._open[address] >= limit:
            return False
        self._open[address] += 1
        return True

    def release(self, address: str) -> None:
        self._open[address] -= 1
        if self._open[address] <= 0:
            del self._open[address]

    def __getitem__(self, address: str) -> int:
        return self._open[address]
