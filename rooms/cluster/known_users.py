"""Users this worker saw exist a moment ago, so a CONNECT needs no database round trip.

Looking the user up cost every CONNECT a hop to Django's database thread and a query:
13% of a connect storm's worker CPU (py-spy --gil, bench/profile.sh connect). A user found
is trusted for TTL_S seconds. A deleted user is forgotten at once on every worker (its
post_delete is broadcast to the cluster, rooms/signals.py); if that broadcast is lost
(Redis away), or rows vanish without signals (reset_db's flush), within TTL_S.
"""

from __future__ import annotations

import time
from collections.abc import Callable

TTL_S = 2.0


MAX_MISSING = 10_000  # ids remembered as unknown at most (a flood of new ids evicts)


class KnownUsers:
    """Keyed by canonical id_user ("3", users.services.parse_id_user's form as a string).

    Ids found missing are remembered the same way, so a client trying unknown users costs
    one lookup per id and TTL_S, not one per CONNECT. Any save of a user reaches every
    worker (`user.renamed`, a creation included) and forgets both answers for that id.
    """

    def __init__(self, ttl: float = TTL_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.clock = clock
        self._seen: dict[str, float] = {}  # id_user -> when it was seen to exist
        self._missing: dict[str, float] = {}  # id_user -> when it was found not to exist

    def __contains__(self, id_user: str) -> bool:
        seen = self._seen.get(id_user)
        return seen is not None and self.clock() - seen <= self.ttl

    def is_missing(self, id_user: str) -> bool:
        missing = self._missing.get(id_user)
        return missing is not None and self.clock() - missing <= self.ttl

    def remember(self, id_user: str) -> None:
        self._seen[id_user] = self.clock()
        self._missing.pop(id_user, None)

    def remember_missing(self, id_user: str) -> None:
        if len(self._missing) >= MAX_MISSING:
            self._missing.pop(next(iter(self._missing)))
        self._missing[id_user] = self.clock()

    def forget(self, id_user: str) -> None:
        self._seen.pop(id_user, None)
        self._missing.pop(id_user, None)


KNOWN_USERS = KnownUsers()
