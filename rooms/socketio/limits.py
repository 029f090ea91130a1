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

    def full(self) -> bool:
        self._refill()
        return self.tokens >= self.burst

    def empty(self) -> bool:
        self._refill()
        return self.tokens < 1

    def _refill(self) -> None:
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now


class BudgetsPerAddress:
    """A token bucket per client address: at most `per_minute` takes in a minute, all at
    once if they come so (0: no limit). The table keeps the addresses that took lately:
    past `KEEP` of them, those whose bucket is full again are dropped."""

    KEEP = 10_000

    def __init__(self) -> None:
        self._buckets: dict[str, TokenBucket] = {}
        self._prune_at = self.KEEP

    def take(self, address: str, per_minute: int) -> bool:
        if per_minute <= 0:
            return True
        bucket = self._buckets.get(address)
        if bucket is None:
            if len(self._buckets) >= self._prune_at:
                self._prune()
            bucket = self._buckets[address] = TokenBucket(per_minute / 60, burst=per_minute)
        return bucket.take()

    def exhausted(self, address: str, per_minute: int) -> bool:
        bucket = self._buckets.get(address)
        return per_minute > 0 and bucket is not None and bucket.empty()

    def clear(self) -> None:
        self._buckets.clear()

    def _prune(self) -> None:
        self._buckets = {a: b for a, b in self._buckets.items() if not b.full()}
        self._prune_at = max(self.KEEP, 2 * len(self._buckets))


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
