"""The Redis channel names of the bus, and which Redis server (shard) carries each.

Our own names, not channels_redis's: the bus owns its connections (rooms.bus.publisher,
rooms.bus.subscriber) and must not depend on another library's private naming. Under a
prefix (CHANNEL_PREFIX, so several clusters can share one Redis):
- `<prefix>:g:<group>`: a group (the `cluster` group, one per room);
- `<prefix>:c:<kind><32 hex>`: a channel of one worker, made at start-up.
A name lives on shard `crc32(name) mod N` of the N Redis URLs; every worker computes the
same, so a publisher and the subscribers of a name always meet on one server.
"""

from __future__ import annotations

import uuid
import zlib
from dataclasses import dataclass


@dataclass(frozen=True)
class BusNames:
    prefix: str

    def group(self, group: str) -> str:
        return f"{self.prefix}:g:{group}"

    def new_channel(self, kind: str) -> str:
        return f"{self.prefix}:c:{kind}{uuid.uuid4().hex}"


def shard_index(name: str, shards: int) -> int:
    """Which of `shards` Redis servers carries this channel name."""
    return zlib.crc32(name.encode("utf-8")) % shards if shards > 1 else 0
