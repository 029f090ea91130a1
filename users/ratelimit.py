"""Budgets per client address, per worker process: token buckets in bounded tables.

A PUT renames a user for every socket of every room it sits in, across the cluster; one
address sending them in a loop costs each worker a database write and a fan-out per
request. Tables: writes (RENAMES), the room events they make the cluster publish
(RENAME_FANOUT), which grow with the renamed user's sockets and rooms, and refused
Socket.IO CONNECTs (REFUSED_CONNECTS, each a connection, a decode and a user lookup;
rooms.socketio.consumer counts them here). Each address gets
a token bucket per table (the same shape as rooms.socketio.limits' per-connection one;
users import nothing of rooms): `per_minute` tokens a minute, in bursts of as many. A
table holds at most `MAX_ADDRESSES` buckets: a bucket that has refilled is forgotten (it
is what a new one would be), and past the cap the least recently used goes, so a spread
of addresses costs bounded memory.

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

    def retry_after(self, address: str, per_minute: int, cost: int = 1) -> int:
        """Take `cost` tokens for `address`: 0 when allowed, else the whole seconds until
        that would be (Retry-After, RFC 9110 section 10.2.3). 0 per minute: no limit.

        A cost larger than a minute's budget is allowed on a full bucket and overdraws
        it, so the address then waits in proportion to what it spent: every request can
        pass once, and the average stays `per_minute`."""
        if per_minute <= 0:
            return 0
        rate, now = per_minute / 60.0, self.clock()
        bucket = self._buckets.pop(address, None) or Bucket(float(per_minute), now)
        bucket.tokens = min(float(per_minute), bucket.tokens + (now - bucket.updated) * rate)
        bucket.updated = now
        self._bound(now, rate, per_minute)
        self._buckets[address] = bucket  # the most recently used, last
        needed = min(cost, per_minute)
        if bucket.tokens < needed:
            return max(1, math.ceil((needed - bucket.tokens) / rate))
        bucket.tokens -= cost
        return 0

    def exhausted(self, address: str, per_minute: int) -> bool:
        """Whether `address` has less than one token left, taking nothing (an address
        never counted has a full bucket)."""
        bucket = self._buckets.get(address)
        if per_minute <= 0 or bucket is None:
            return False
        refill = (self.clock() - bucket.updated) * per_minute / 60.0
        return bucket.tokens + refill < 1

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

RENAME_FANOUT = AddressRateLimit()
"""This worker's table of the room events renames make the cluster publish, by the address
that asked for them: a rename costs as many as the renamed user's rooms on each worker
(users.services.rename_reach), which for a user with 1,800 sockets in 100 rooms each is
180,000 messages (55 MB) through Redis."""

REFUSED_CONNECTS = AddressRateLimit()
"""This worker's table of refused Socket.IO CONNECTs, by client address
(SOCKETIO_CONNECT_REFUSALS_PER_MINUTE; rooms.socketio.consumer)."""
