"""Server-side changes to users reach the cluster: renames reach the renamed user's rooms
without any client emitting; deletions reach every worker's KNOWN_USERS."""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from rooms import runtime
from rooms.cluster import events
from rooms.cluster.known_users import KNOWN_USERS
from users.models import PlaygroundUser

logger = logging.getLogger(__name__)


def announce(message: dict[str, Any], what: str) -> None:
    """One broadcast to every worker; a Redis outage must not fail the change itself."""
    try:
        runtime.publish_to_cluster(message)
    except Exception as exc:
        logger.warning("%s saved but not announced: %s", what, exc)


@receiver(post_save, sender=PlaygroundUser, dispatch_uid="rooms.announce_rename")
def user_saved(sender: type[PlaygroundUser], instance: PlaygroundUser, **kwargs: Any) -> None:
    if kwargs.get("raw"):  # loaddata: seeding is not a rename
        return
    message = events.user_renamed(instance.id_user)
    what = f"rename of user {instance.id_user}"
    transaction.on_commit(lambda: announce(message, what))


@receiver(post_delete, sender=PlaygroundUser, dispatch_uid="rooms.announce_deletion")
def user_deleted(sender: type[PlaygroundUser], instance: PlaygroundUser, **kwargs: Any) -> None:
    KNOWN_USERS.forget(instance.id_user)  # this process at once, the others by the broadcast
    message = events.user_deleted(instance.id_user)
    what = f"deletion of user {instance.id_user}"
    transaction.on_commit(lambda: announce(message, what))
