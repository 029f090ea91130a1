"""Publishing from synchronous code: Django signals in a view's thread, the admin, a
management command. redis-py's blocking client, one per Redis URL per process; the message
is the same as the async publisher's (rooms.bus.publisher), on the same channel and shard.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import redis

from rooms.bus.connection import VERIFIED, RedisTls, redis_py_options
from rooms.bus.names import BusNames, shard_index
from rooms.bus.serialization import UnreadableMessage, deserialize, serialize

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
    return int(_client(urls, name, tls).publish(name, serialize(message)))


def ask_group(
    urls: list[str],
    names: BusNames,
    group: str,
    question: Callable[[str], dict[str, Any]],
    *,
    timeout: float,
    tls: RedisTls = VERIFIED,
) -> tuple[list[dict[str, Any]], int]:
    """Scatter-gather from synchronous code: subscribe a reply channel of our own, PUBLISH
    `question(reply channel)` to the group, and read replies until every subscriber
    PUBLISH reached has answered or `timeout` has passed; (replies, subscribers reached).

    The subscription is confirmed before the question goes out, so no early reply is lost.
    Redis errors (ConnectionError, TimeoutError) reach the caller.
    """
    reply_to = names.new_channel("ask.")
    pubsub = _client(urls, reply_to, tls).pubsub()  # type: ignore[no-untyped-call]
    try:
        deadline = time.monotonic() + timeout
        pubsub.subscribe(reply_to)
        while (left := deadline - time.monotonic()) > 0:
            confirmation = pubsub.get_message(timeout=left)
            if confirmation is not None and confirmation["type"] == "subscribe":
                break
        else:
            raise redis.TimeoutError(f"no SUBSCRIBE confirmation within {timeout} s")
        reached = group_send(urls, names, group, question(reply_to), tls)
        replies: list[dict[str, Any]] = []
        while len(replies) < reached and (left := deadline - time.monotonic()) > 0:
            message = pubsub.get_message(timeout=left)
            if message is not None and message["type"] == "message":
                try:
                    replies.append(deserialize(message["data"]))
                except UnreadableMessage:
                    continue
        return replies, reached
    finally:
        pubsub.close()


def _client(urls: list[str], name: str, tls: RedisTls) -> redis.Redis:
    """The client of the shard that carries channel `name`, one per URL per process."""
    url = urls[shard_index(name, len(urls))]
    client = _clients.get(url)
    if client is None:
        options = redis_py_options(url, 1.0, tls)
        client = _clients[url] = redis.Redis.from_url(url, **options)
    return client
