"""The WebSocket handshake's Host checked against ALLOWED_HOSTS, as Django checks it for
every HTTP request (rooms.socketio.origin)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from pytest_django.fixtures import Settings

from rooms.socketio import codec
from tests.consumer.conftest import Client, socket_path

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize(
    ("headers", "accepted"),
    [
        ([], True),  # an in-process client that sends no Host at all
        ([(b"host", b"localhost:8000")], True),
        ([(b"host", b"[::1]")], True),
        ([(b"host", b"evil.example")], False),  # DNS rebinding: the attacker's name
        ([(b"host", b"evil.example"), (b"origin", b"http://evil.example")], False),
        ([(b"host", b"localhost.evil.example")], False),
        ([(b"host", b"evil.example"), (b"origin", b"http://localhost")], False),
    ],
)
async def test_host_must_be_an_allowed_host(
    settings: Settings,
    raw_client: Callable[..., Client],
    headers: list[tuple[bytes, bytes]],
    accepted: bool,
) -> None:
    """A Host outside ALLOWED_HOSTS is refused before the handshake completes, whatever
    Origin says; an allowed Host, with or without a port, is served."""
    settings.ALLOWED_HOSTS = ["localhost", "[::1]"]
    client = raw_client(socket_path(id_user="1"), headers=headers)
    connected, _ = await client.comm.connect()
    assert connected is accepted
    if accepted:
        assert isinstance(await client.recv(), codec.Open)
        await client.connect_namespace()
