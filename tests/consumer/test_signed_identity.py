"""Signed identity mode (IDENTITY_MODE=signed) at the Socket.IO CONNECT: only a valid
token of an existing user connects, as that user; every other CONNECT gets CONNECT_ERROR
saying why and registers nothing."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.core import signing
from pytest_django.fixtures import Settings

from rooms.cluster.node import WorkerNode
from tests.consumer.conftest import Client, ClientFactory, expect, socket_path
from users import identity
from users.models import PlaygroundUser

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def signed(socketio_env: Settings) -> None:
    socketio_env.IDENTITY_MODE = "signed"


async def test_a_valid_token_connects_as_its_user(connect: ClientFactory, node: WorkerNode) -> None:
    """auth {token, room}: the socket is the token's user, in the room, on the roster."""
    client = await connect(auth={"token": identity.make_token("3"), "room": "Maths"})
    roster = [(sid, uid) for sid, uid, _ in (await node.roster("Maths")).entries]
    assert roster == [(client.sid, "3")]


async def test_identity_change_is_stamped_with_the_tokens_user(connect: ClientFactory) -> None:
    """Events carry the verified id_user, whatever the payload claims."""
    mary = await connect(auth={"token": identity.make_token("2"), "room": "Maths"})
    john = await connect(auth={"token": identity.make_token("1"), "room": "Maths"})
    await expect(mary, "socket-connected", john.sid)
    assert await john.call("identity-change", {"name": "J", "id_user": "2"}) == {"ok": True}
    await expect(mary, "identity-change", {"name": "J", "id_user": "1"})


def _tampered() -> str:
    return "4" + identity.make_token("3")[1:]


def _expired() -> str:
    return identity.make_token("3", issued_at=time.time() - 86400 - 60)


@pytest.mark.parametrize(
    ("query", "auth", "expected"),
    [
        ({}, None, "Missing token"),
        ({}, {"room": "Maths"}, "Missing token"),
        ({"id_user": "3"}, None, "Plain id_user 3"),
        ({}, {"id_user": "3"}, "Plain id_user 3"),
        ({"token": "x"}, None, "Missing token"),  # a token in a URL is not read (logs keep URLs)
        ({}, {"token": _tampered}, "Invalid token signature"),
        ({}, {"token": "junk"}, "Invalid token signature"),
        ({}, {"token": lambda: signing.TimestampSigner().sign("3")}, "Invalid token signature"),
        ({}, {"token": _expired}, "Expired token"),
        ({}, {"token": 3}, "Malformed token"),
        ({}, {"token": ""}, "Malformed token"),
        ({"id_user": "4"}, {"token": lambda: identity.make_token("3")}, "not the token's user"),
    ],
    ids=[
        "nothing",
        "room-only",
        "query-id_user",
        "auth-id_user",
        "query-token",
        "tampered",
        "junk",
        "wrong-salt",
        "expired",
        "not-a-string",
        "empty",
        "mismatch",
    ],
)
async def test_every_other_connect_is_refused_and_registers_nothing(
    raw_client: Callable[..., Client],
    node: WorkerNode,
    query: dict[str, str],
    auth: dict[str, Any] | None,
    expected: str,
) -> None:
    """No token, a plain id_user, a tampered, junk, wrongly-salted or expired token: a
    CONNECT_ERROR naming the reason, and nothing registered."""
    if auth is not None and callable(auth.get("token")):
        auth = {**auth, "token": auth["token"]()}
    client = raw_client(socket_path(room="Maths", **query))
    await client.open()
    assert expected in await client.connect_refused(auth)
    await client.assert_nothing()
    assert len(node.registry) == 0
    assert (await node.roster("Maths")).entries == []


async def test_a_token_of_a_deleted_user_is_refused(
    connect: ClientFactory, raw_client: Callable[..., Client], node: WorkerNode
) -> None:
    """A valid signature is not enough: the user must still exist (even one just seen)."""
    token = identity.make_token("2")
    await connect(auth={"token": token})
    await database_sync_to_async(PlaygroundUser.objects.filter(pk=2).delete)()
    client = raw_client(socket_path())
    await client.open()
    message = await client.connect_refused({"token": token})
    assert message == "Token for a user that no longer exists: 2"
    assert len(node.registry) == 1


async def test_refusals_count_towards_the_connect_attempts(
    settings: Settings, raw_client: Callable[..., Client]
) -> None:
    """Bad tokens are refused CONNECTs like any other: the connection is closed after
    SOCKETIO_MAX_CONNECT_ATTEMPTS of them."""
    settings.SOCKETIO_MAX_CONNECT_ATTEMPTS = 2
    client = raw_client(socket_path())
    await client.open()
    await client.connect_refused({"token": "junk"})
    await client.connect_refused({"token": _tampered()})
    await client.assert_closed()


async def test_open_mode_still_takes_a_plain_id_user(
    settings: Settings, connect: ClientFactory
) -> None:
    """IDENTITY_MODE=open (the default) admits a claimed id_user as before."""
    settings.IDENTITY_MODE = "open"
    client = await connect(id_user="5")
    assert client.sid
