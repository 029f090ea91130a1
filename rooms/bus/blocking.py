"""Publishing from synchronous code: Django signals in a view's thread, the admin, a
management command. redis-py's blocking client, one per Redis URL per process; the message
is the same as the async publisher's (rooms.bus.publisher), on the same channel and shard.
"""

from __future__ import annotations

from typing import Any

import redis

from rooms.bus.connection import VERIFIED, RedisTls, redis_py_options
from rooms.bus.names import BusNames, shard_index
from rooms.bus.serialization import serialize

_clients: dict[str, redis.Redis] = {}


def group_send(
    urls: list[str],
    names: BusNames,
    group: str,
    message: dict[str, Any],
    tls: RedisTls = VERIFIED,
) -> int:
    """PUBLISH to a group; returns how many subscriptions Redis delivered it to."""
    name = names.group(group)
    url = urls[shard_index(name, len(urls))]
    client = _clients.get(url)
    if client is None:
        options = redis_py_options(url, 1.0, tls)
        client = _clients[url] = redis.Redis.from_url(url, **options)
    return int(client.publish(name, serialize(message)))
