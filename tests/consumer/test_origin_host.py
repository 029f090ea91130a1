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


async def handshake(raw_client: Callable[..., Client], headers: list[tuple[bytes, bytes]]) -> bool:
    """Whether the server completes the WebSocket handshake (the OPEN packet follows)."""
    client = raw_client(socket_path(id_user="1"), headers=headers)
    connected, _ = await client.comm.connect()
    if connected:
        assert isinstance(await client.recv(), codec.Open)
    return bool(connected)


BEHIND_HEROKU = [(b"host", b"app.example"), (b"origin", b"https://app.example")]


@pytest.mark.parametrize(
    ("proxy_header", "headers", "accepted"),
    [
        # Heroku's router ends TLS and says so in X-Forwarded-Proto: the page is https
        (True, [*BEHIND_HEROKU, (b"x-forwarded-proto", b"https")], True),
        (True, [*BEHIND_HEROKU, (b"x-forwarded-proto", b"http")], False),
        (True, BEHIND_HEROKU, False),
        # without SECURE_PROXY_SSL_HEADER a client's X-Forwarded-Proto proves nothing
        (False, [*BEHIND_HEROKU, (b"x-forwarded-proto", b"https")], False),
        (True, [(b"host", b"app.example"), (b"origin", b"http://app.example")], True),
        (True, [(b"host", b"app.example:443"), (b"origin", b"https://app.example"),
                (b"x-forwarded-proto", b"https")], True),  # the default port, spelled out
    ],
)  # fmt: skip
async def test_behind_a_proxy_the_origin_is_the_host_and_the_forwarded_scheme(
    settings: Settings,
    raw_client: Callable[..., Client],
    proxy_header: bool,
    headers: list[tuple[bytes, bytes]],
    accepted: bool,
) -> None:
    """The server's own origin is the Host header with the scheme the request arrived with:
    https when SECURE_PROXY_SSL_HEADER trusts the proxy's X-Forwarded-Proto, as Django's
    request.scheme decides it."""
    settings.ALLOWED_HOSTS = ["app.example"]
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if proxy_header else None
    assert await handshake(raw_client, headers) is accepted


@pytest.mark.parametrize(
    ("origin", "accepted"),
    [
        (b"https://admin.example", True),
        (b"https://admin.example:8443", False),
        (b"http://admin.example", False),
        (b"https://eu.tools.example", True),
        (b"https://tools.example.evil", False),
        (b"https://other.example", False),
    ],
)
async def test_csrf_trusted_origins_are_admitted_too(
    settings: Settings, raw_client: Callable[..., Client], origin: bytes, accepted: bool
) -> None:
    """CSRF_TRUSTED_ORIGINS names extra origins a page may open a socket from, exactly or as
    `https://*.domain`, as it names those allowed to send writes."""
    settings.ALLOWED_HOSTS = ["app.example"]
    settings.CSRF_TRUSTED_ORIGINS = ["https://admin.example", "https://*.tools.example"]
    headers = [(b"host", b"app.example"), (b"origin", origin)]
    assert await handshake(raw_client, headers) is accepted


async def test_an_origin_without_a_host_to_compare_with_is_refused(
    settings: Settings, raw_client: Callable[..., Client]
) -> None:
    """A browser always sends Host; an Origin with no Host is no one's own origin."""
    settings.ALLOWED_HOSTS = ["localhost"]
    assert await handshake(raw_client, [(b"origin", b"http://localhost")]) is False
    assert await handshake(raw_client, []) is True
