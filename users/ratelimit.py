"""Writes per client address, per worker process: token buckets in a bounded table.

A PUT renames a user for every socket of every room it sits in, across the cluster; one
address sending them in a loop costs each worker a database write and a fan-out per
request. Each address gets a token bucket (the same shape as rooms.socketio.limits'
per-connection one; users import nothing of rooms): `per_minute` writes a minute, in
bursts of as many. The table holds at most `MAX_ADDRESSES` buckets: a bucket that has
refilled is forgotten (it is what a new one would be), and past the cap the least recently
used goes, so a spread of addresses costs bounded memory.

The address is identity_playground.client_address's: behind a trusted proxy, the last
X-Forwarded-For entry (the one the proxy wrote), else the peer's address.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

MAX_ADDRESSES = 10_000


@dataclass
class Bucket:
    tokens: float
    updated: float


class AddressRateLimit:
    def __init__(
        self, max_addresses: int = MAX_ADDRESSES, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.max_addresses = max_addresses
        self.clock = clock
        self._buckets: OrderedDict[str, Bucket] = OrderedDict()  # address -> its bucket

    def retry_after(self, address: str, per_minute: int) -> int:
        """Take one write for `address`: 0 when allowed, else the whole seconds until the
        next one would be (Retry-After, RFC 9110 section 10.2.3). 0 per minute: no limit."""
        if per_minute <= 0:
            return 0
        rate, now = per_minute / 60.0, self.clock()
        bucket = self._buckets.pop(address, None) or Bucket(float(per_minute), now)
        bucket.tokens = min(float(per_minute), bucket.tokens + (now - bucket.updated) * rate)
        bucket.updated = now
        self._bound(now, rate, per_minute)
        self._buckets[address] = bucket  # the most recently used, last
        if bucket.tokens < 1:
            return max(1, math.ceil((1 - bucket.tokens) / rate))
        bucket.tokens -= 1
        return 0

    def _bound(self, now: float, rate: float, per_minute: int) -> None:
        """Drop the least recently used buckets that have refilled (each is what a new
        one would be), then, past the cap, the least recently used one whatever it holds."""
        for address, bucket in list(self._buckets.items())[:16]:
            if bucket.tokens + (now - bucket.updated) * rate < per_minute:
                break
            del self._buckets[address]
        while len(self._buckets) >= self.max_addresses:
            self._buckets.popitem(last=False)

    def __len__(self) -> int:
        return len(self._buckets)


RENAMES = AddressRateLimit()
"""This worker's table for PUT/PATCH /users/<id> (users.views)."""
