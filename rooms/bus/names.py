"""The Redis channel names of the bus, and which Redis server (shard) carries each.

Our own names, not channels_redis's: the bus owns its connections (rooms.bus.publisher,
rooms.bus.subscriber) and must not depend on another library's private naming. Under a
prefix (CHANNEL_PREFIX, so several clusters can share one Redis):
- `<prefix>:g:<group>`: a group (the `cluster` group, one per room);
- `<prefix>:c:<kind><32 hex>`: a channel of one worker, made at start-up;
- `<prefix>:c:<name>`: the process-specific channels `<name>` of one Channels layer
  instance (rooms.bus.layer), `<prefix>:q:<name>`: the list of a normal Channels channel.
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
        return self.channel(f"{kind}{uuid.uuid4().hex}")

    def channel(self, name: str) -> str:
        return f"{self.prefix}:c:{name}"

    def queue(self, channel: str) -> str:
        return f"{self.prefix}:q:{channel}"

    def group_of(self, name: str) -> str | None:
        """The group whose channel `name` is, or None for any other name."""
        head = f"{self.prefix}:g:"
        return name[len(head) :] if name.startswith(head) else None


def shard_index(name: str, shards: int) -> int:
    """Which of `shards` Redis servers carries this channel name."""
    return zlib.crc32(name.encode("utf-8")) % shards if shards > 1 else 0
