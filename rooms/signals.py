"""Server-side changes to users reach the cluster: renames reach the renamed user's rooms
without any client emitting; deletions reach every worker's KNOWN_USERS."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from rooms.known_users import KNOWN_USERS
from rooms.node import publish_deletion, publish_rename
from users.models import PlaygroundUser

logger = logging.getLogger(__name__)


def announce(publish: Callable[[Any, str], Awaitable[None]], id_user: str, what: str) -> None:
    """One broadcast to every worker; a Redis outage must not fail the change itself."""
    try:
        async_to_sync(publish)(get_channel_layer(), id_user)
    except Exception as exc:
        logger.warning("%s of user %s saved but not announced: %s", what, id_user, exc)


@receiver(post_save, sender=PlaygroundUser, dispatch_uid="rooms.announce_rename")
def user_saved(sender: type[PlaygroundUser], instance: PlaygroundUser, **kwargs: Any) -> None:
    if kwargs.get("raw"):  # loaddata: seeding is not a rename
        return
    id_user = instance.id_user
    transaction.on_commit(lambda: announce(publish_rename, id_user, "rename"))


@receiver(post_delete, sender=PlaygroundUser, dispatch_uid="rooms.announce_deletion")
def user_deleted(sender: type[PlaygroundUser], instance: PlaygroundUser, **kwargs: Any) -> None:
    id_user = instance.id_user
    KNOWN_USERS.forget(id_user)  # this process at once, the others by the broadcast
    transaction.on_commit(lambda: announce(publish_deletion, id_user, "deletion"))
