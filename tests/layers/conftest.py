"""The channel layers the conformance suite runs on, each on the session's private Redis:
ours (rooms.bus.layer) and channels_redis's two (https://github.com/django/channels_redis).
A layer the spec allows to differ on a point says so with `differs(...)` in the test."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from channels_redis.core import RedisChannelLayer
from channels_redis.pubsub import RedisPubSubChannelLayer

from rooms.bus.layer import BusChannelLayer
from tests.integration.conftest import redis_server
from tests.integration.servers import RedisServer

__all__ = ["redis_server"]

pytestmark = pytest.mark.integration

CAPACITY = 3
TINY = {"tiny*": 1}  # channel_capacity: channels named tiny... hold one message

LayerFactory = Callable[..., Any]


def ours(url: str, prefix: str, **config: Any) -> BusChannelLayer:
    return BusChannelLayer(hosts=[url], prefix=prefix, **config)


def pubsub(url: str, prefix: str, **config: Any) -> RedisPubSubChannelLayer:
    config.pop("channel_capacity", None)  # it has no capacity
    config.pop("capacity", None)
    config.pop("expiry", None)
    return RedisPubSubChannelLayer(hosts=[url], prefix=prefix, **config)


def core(url: str, prefix: str, **config: Any) -> RedisChannelLayer:
    return RedisChannelLayer(hosts=[url], prefix=prefix, **config)


FACTORIES = {"ours": ours, "pubsub": pubsub, "core": core}


@pytest.fixture(params=list(FACTORIES))
def make_layer(request: pytest.FixtureRequest, redis_server: RedisServer) -> Callable[..., Any]:
    """Layers of one kind on the session's Redis, sharing one prefix per test: two of them
    are two processes of one cluster."""
    prefix = f"t{uuid.uuid4().hex[:8]}"
    factory = FACTORIES[request.param]

    def make(**config: Any) -> Any:
        return factory(redis_server.url, prefix, **config)

    make.kind = request.param  # type: ignore[attr-defined]
    return make


@pytest.fixture
async def layer(make_layer: Callable[..., Any]) -> AsyncIterator[Any]:
    made = make_layer(capacity=CAPACITY, channel_capacity=TINY, expiry=2)
    yield made
    await made.flush()


@pytest.fixture
async def other(make_layer: Callable[..., Any]) -> AsyncIterator[Any]:
    """The same layer in another process of the cluster."""
    made = make_layer(capacity=CAPACITY, channel_capacity=TINY, expiry=2)
    yield made
    await made.flush()


def kind(layer: Any) -> str:
    return {BusChannelLayer: "ours", RedisPubSubChannelLayer: "pubsub"}.get(type(layer), "core")


def differs(request: pytest.FixtureRequest, layer: Any, reason: str, *kinds: str) -> None:
    """This test shows a point of the spec that `kinds` of layer do not keep: expected to
    fail there (strictly: a fix upstream makes the test say so), with the reason
    (the upstream issue) in the report."""
    if kind(layer) in kinds:
        request.applymarker(pytest.mark.xfail(reason=reason, strict=True))
