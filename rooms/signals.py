"""Server-side renames reach the rooms of the renamed user without any client emitting."""

from __future__ import annotations

import logging
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction
from django.db.models.signals import post_save
from django.dispatch import receiver

from rooms.node import publish_rename
from users.models import PlaygroundUser

logger = logging.getLogger(__name__)


def announce_rename(id_user: str) -> None:
    """One broadcast to every worker; a Redis outage must not fail the rename itself."""
    try:
        async_to_sync(publish_rename)(get_channel_layer(), id_user)
    except Exception as exc:
        logger.warning("rename of user %s saved but not announced: %s", id_user, exc)


@receiver(post_save, sender=PlaygroundUser, dispatch_uid="rooms.announce_rename")
def user_saved(sender: type[PlaygroundUser], instance: PlaygroundUser, **kwargs: Any) -> None:
    if kwargs.get("raw"):  # loaddata: seeding is not a rename
        return
    id_user = instance.id_user
    transaction.on_commit(lambda: announce_rename(id_user))
