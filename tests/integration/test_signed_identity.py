"""A real cluster in signed identity mode (IDENTITY_MODE=signed): the official clients
connect only with a token from `manage.py identity_token`, everything else is refused with
a clear CONNECT_ERROR, renames need the renamed user's token, and the admin's "online now"
counts every worker's sockets."""

from __future__ import annotations

import asyncio
import http.cookiejar
import json
import re
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import socketio
from django.core import signing
from pytest_django.fixtures import Settings

from rooms import runtime
from tests.integration.conftest import module_cluster
from tests.integration.recording import Client, until_two_workers
from tests.integration.servers import ROOT, Cluster, RedisServer
from tests.integration.test_clients import NODE, needs_node, node_lines
from tests.integration.wire import roster
from users import identity

pytestmark = [pytest.mark.integration, pytest.mark.daphne]
SIGNED_JS = ROOT / "tests" / "integration" / "js" / "signed.js"


@pytest.fixture(scope="module")
def signed_cluster(
    redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    """2 workers with IDENTITY_MODE=signed."""
    yield from module_cluster(2, redis_server, tmp_path_factory, IDENTITY_MODE="signed")


def manage(cluster: Cluster, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`manage.py ...` with the cluster's environment (its database, Redis, SECRET_KEY)."""
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT, env={**cluster.env(), **env}, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def token_of(cluster: Cluster, id_user: str) -> str:
    done = manage(cluster, "identity_token", id_user)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


def put_name(cluster: Cluster, id_user: str, name: str, token: str | None) -> int:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(
        f"{cluster.url}/users/{id_user}",
        data=json.dumps({"name": name}).encode(),
        method="PUT",
        headers=headers,
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def name_of(cluster: Cluster, id_user: str) -> str:
    with urllib.request.urlopen(f"{cluster.url}/users/{id_user}", timeout=5) as response:
        return str(json.loads(response.read())["name"])


def test_identity_token_refuses_an_unknown_user(signed_cluster: Cluster) -> None:
    """`manage.py identity_token 99` fails with a message; no token is printed."""
    done = manage(signed_cluster, "identity_token", "99")
    assert done.returncode != 0
    assert "Unknown id_user: 99" in done.stderr
    assert done.stdout.strip() == ""


async def test_python_socketio_connects_with_a_token_as_its_user(signed_cluster: Cluster) -> None:
    """python-socketio with auth {token, room}: handshake, and the roster shows the
    token's user."""
    room = f"signed-{uuid.uuid4().hex[:8]}"
    token = await asyncio.to_thread(token_of, signed_cluster, "3")
    client = await Client().open(signed_cluster.url, auth={"token": token, "room": room})
    try:
        await client.wait_for("handshake")
        entries = await roster(signed_cluster, room)
        assert [(e["id_socket"], e["id_user"]) for e in entries] == [(client.sid, "3")]
    finally:
        await client.close()


def _refusals() -> list[tuple[str, dict[str, Any] | None, str]]:
    return [
        ("", None, "Missing token"),
        ("?id_user=3", None, "Plain id_user 3"),
        ("", {"id_user": "3"}, "Plain id_user 3"),
        ("", {"token": "junk"}, "Invalid token signature"),
        ("", {"token": "4" + identity.make_token("3")[1:]}, "Invalid token signature"),
        ("", {"token": signing.TimestampSigner().sign("3")}, "Invalid token signature"),
        ("", {"token": identity.make_token("3", issued_at=time.time() - 2 * 86400)}, "Expired"),
        ("", {"token": identity.make_token("99")}, "Token for a user that no longer exists: 99"),
    ]


@pytest.mark.parametrize(
    ("query", "auth", "shown"),
    _refusals(),
    ids=[
        "none",
        "query-id_user",
        "auth-id_user",
        "junk",
        "tampered",
        "wrong-salt",
        "expired",
        "no-such-user",
    ],  # fmt: skip
)
async def test_python_socketio_every_other_connect_is_refused(
    signed_cluster: Cluster, query: str, auth: dict[str, Any] | None, shown: str
) -> None:
    """connect() raises, connect_error carries our message saying why, nothing is
    registered. (The tokens here are made with the test's SECRET_KEY, the cluster's.)"""
    room = f"refused-{uuid.uuid4().hex[:8]}"
    client = Client()
    sep = "&" if query else "?"
    with pytest.raises(socketio.exceptions.ConnectionError):
        await client.open(f"{signed_cluster.url}{query}{sep}room={room}", auth=auth)
    try:
        assert len(client.connect_errors) == 1
        assert shown in client.connect_errors[0]["message"]
        assert await roster(signed_cluster, room) == []
    finally:
        await client.close()


@needs_node
async def test_node_socketio_client_with_a_token(signed_cluster: Cluster) -> None:
    """socket.io-client with auth {token, room} connects as the token's user; a tampered
    token and a plain id_user get connect_error with our messages."""
    assert NODE is not None
    room = f"node-signed-{uuid.uuid4().hex[:8]}"
    token = await asyncio.to_thread(token_of, signed_cluster, "3")
    process = await asyncio.create_subprocess_exec(
        NODE, str(SIGNED_JS), signed_cluster.url, room, token, token[:-2] + "xx",
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    (result,) = await node_lines(process)
    assert result["error"] is None, result
    assert result["good"]["connected"] is True and result["good"]["handshake"]["procid"]
    assert "Invalid token signature" in result["bad"]["refused"]
    assert "Plain id_user 3" in result["plain"]["refused"]


def test_put_needs_the_renamed_users_token(signed_cluster: Cluster) -> None:
    """PUT /users/3: no token 401, user 4's token 403, user 3's token 204; only the last
    changes the name."""
    before = name_of(signed_cluster, "3")
    assert put_name(signed_cluster, "3", "Nobody", None) in (401, 403)
    assert put_name(signed_cluster, "3", "Frank's", token_of(signed_cluster, "4")) == 403
    assert name_of(signed_cluster, "3") == before
    assert put_name(signed_cluster, "3", "Michael", token_of(signed_cluster, "3")) == 204
    assert name_of(signed_cluster, "3") == "Michael"


async def signed_socket(cluster: Cluster, token: str) -> Client:
    """A socket connected with a signed token, once its handshake arrived."""
    client = Client()
    await client.open(cluster.url, auth={"token": token})
    await client.wait_for("handshake")
    return client


async def test_sockets_per_user_counts_every_worker(
    signed_cluster: Cluster, settings: Settings
) -> None:
    """rooms.runtime.sockets_per_user, asked from another process over the cluster's
    Redis, counts the sockets of both workers."""
    settings.REDIS_URLS = [signed_cluster.redis_url]
    settings.CHANNEL_PREFIX = signed_cluster.prefix
    settings.CLUSTER_GATHER_DEADLINE = 5.0  # its own subscribe counts too, on a busy machine
    tokens = {u: await asyncio.to_thread(token_of, signed_cluster, u) for u in ("5", "6")}
    users: list[str] = []
    clients: list[Client] = []

    async def one_more() -> Client:
        users.append("5" if len(users) % 5 < 3 else "6")  # 5, 5, 5, 6, 6, 5, ...
        return await signed_socket(signed_cluster, tokens[users[-1]])

    try:
        for _ in range(5):
            clients.append(await one_more())
        await until_two_workers(clients, one_more)
        counts = await asyncio.to_thread(runtime.sockets_per_user)
        assert counts is not None
        assert (counts.get("5"), counts.get("6")) == (users.count("5"), users.count("6"))
    finally:
        for client in clients:
            await client.close()


def staff_session(cluster: Cluster) -> urllib.request.OpenerDirector:
    """A staff login through the admin's own login form, with its cookies."""
    done = manage(
        cluster, "createsuperuser", "--noinput", "--username", "boss", "--email", "b@example.com",
        DJANGO_SUPERUSER_PASSWORD="a-long-test-password-1",
    )  # fmt: skip
    assert done.returncode == 0 or "already taken" in done.stderr, done.stderr
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    form = opener.open(f"{cluster.url}/admin/login/", timeout=5).read().decode()
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form)
    assert csrf is not None
    body = urllib.parse.urlencode(
        {
            "csrfmiddlewaretoken": csrf.group(1),
            "username": "boss",
            "password": "a-long-test-password-1",
            "next": "/admin/",
        }  # fmt: skip
    ).encode()
    request = urllib.request.Request(
        f"{cluster.url}/admin/login/", data=body, headers={"Referer": f"{cluster.url}/admin/login/"}
    )
    assert opener.open(request, timeout=5).geturl().endswith("/admin/")
    return opener


async def test_admin_online_now_inside_the_cluster(signed_cluster: Cluster) -> None:
    """The admin's users list, served by a worker, shows each user's sockets across both
    workers in its "online now" column."""
    opener = await asyncio.to_thread(staff_session, signed_cluster)
    token = await asyncio.to_thread(token_of, signed_cluster, "7")
    clients: list[Client] = []

    async def one_more() -> Client:
        return await signed_socket(signed_cluster, token)

    try:
        for _ in range(4):
            clients.append(await one_more())
        await until_two_workers(clients, one_more)
        url = f"{signed_cluster.url}/admin/users/playgrounduser/"
        for _ in range(2):  # whichever worker serves the page
            page = await asyncio.to_thread(lambda: opener.open(url, timeout=10).read().decode())
            cells = re.findall(r'class="field-online_now">([^<]*)<', page)
            assert len(cells) == 10, page[-2000:]
            assert cells[6] == str(len(clients))
    finally:
        for client in clients:
            await client.close()
