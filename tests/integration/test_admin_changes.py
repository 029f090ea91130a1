"""Users changed in Django's admin, on a running cluster: a rename reaches the user's rooms,
a deleted user is refused by every worker at once.

The admin is driven over HTTP as a browser would (a staff session, the CSRF token of each
form), so the change goes through the same ModelAdmin save and delete as a person's.
"""

from __future__ import annotations

import asyncio
import html
import json
import re
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from http.cookiejar import CookieJar

import pytest

from rooms.cluster.known_users import TTL_S
from tests.integration.conftest import module_cluster
from tests.integration.recording import close_all, spread_clients
from tests.integration.servers import ROOT, Cluster, RedisServer, http
from tests.integration.wire import engineio_open, recv_packet

pytestmark = [pytest.mark.integration, pytest.mark.daphne]

ADMIN_USER, ADMIN_PASSWORD = "admin", "a-password-for-tests"
CHANGE_FORM = "/admin/users/playgrounduser/{id}/change/"
DELETE_FORM = "/admin/users/playgrounduser/{id}/delete/"


@pytest.fixture(scope="module")
def cluster(
    redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    """Two workers and a superuser in their database."""
    for started in module_cluster(2, redis_server, tmp_path_factory):
        subprocess.run(
            [sys.executable, "manage.py", "createsuperuser", "--noinput",
             "--username", ADMIN_USER, "--email", "admin@example.com"],
            cwd=ROOT, env={**started.env(), "DJANGO_SUPERUSER_PASSWORD": ADMIN_PASSWORD},
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        yield started


class AdminSession:
    """A browser's session in Django's admin: cookies kept, each form's CSRF token sent."""

    def __init__(self, cluster: Cluster) -> None:
        self.base = cluster.url
        self.cookies = urllib.request.HTTPCookieProcessor(CookieJar())
        self.opener = urllib.request.build_opener(self.cookies)
        token = self.form_token("/admin/login/")
        status, location = self.post(
            "/admin/login/",
            {"username": ADMIN_USER, "password": ADMIN_PASSWORD, "next": "/admin/",
             "csrfmiddlewaretoken": token},
        )  # fmt: skip
        assert (status, location) == (302, "/admin/"), "admin login failed"

    def form_token(self, path: str) -> str:
        with self.opener.open(self.base + path, timeout=5) as response:
            page = response.read().decode()
        found = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
        assert found, page[:2000]
        return html.unescape(found.group(1))

    def post(self, path: str, fields: dict[str, str]) -> tuple[int, str]:
        """POST a form; (status, Location) without following the redirect."""

        class NoRedirect(urllib.request.HTTPRedirectHandler):
            def redirect_request(self, *args: object, **kwargs: object) -> None:
                return None

        opener = urllib.request.build_opener(
            NoRedirect,
            *(h for h in self.opener.handlers if isinstance(h, urllib.request.HTTPCookieProcessor)),
        )
        request = urllib.request.Request(
            self.base + path, data=urllib.parse.urlencode(fields).encode(), method="POST"
        )
        try:
            with opener.open(request, timeout=5) as response:
                return response.status, response.headers.get("Location", "")
        except urllib.error.HTTPError as exc:
            return exc.code, exc.headers.get("Location", "")

    def rename(self, id_user: str, name: str) -> None:
        path = CHANGE_FORM.format(id=id_user)
        token = self.form_token(path)  # the form holds the primary key too: it is editable
        fields = {"csrfmiddlewaretoken": token, "id": id_user, "name": name, "_save": "Save"}
        status, location = self.post(path, fields)
        assert (status, location) == (302, "/admin/users/playgrounduser/"), "rename refused"

    def delete(self, id_user: str) -> None:
        path = DELETE_FORM.format(id=id_user)
        fields = {"csrfmiddlewaretoken": self.form_token(path), "post": "yes"}
        status, location = self.post(path, fields)
        assert (status, location) == (302, "/admin/users/playgrounduser/"), "delete refused"


async def test_admin_rename_reaches_the_users_rooms(cluster: Cluster) -> None:
    """Saving a new name in the admin's change form: every socket in a room with that user,
    on either worker, gets `identity-change` `{"id_user"}`; the new name is stored."""
    clients = await spread_clients(cluster.url, "admin-rename", 6)  # users 1..6
    try:
        admin = await asyncio.to_thread(AdminSession, cluster)
        await asyncio.to_thread(admin.rename, "3", "Mike from the admin")
        for client in clients:
            assert await client.wait_for("identity-change") == {"id_user": "3"}
        status, _, body = await asyncio.to_thread(http, f"{cluster.url}/users/3")
        assert (status, body["name"]) == (200, "Mike from the admin")
    finally:
        await close_all(clients)


async def probe(cluster: Cluster, id_user: str) -> tuple[bool, str]:
    """One connection: CONNECT as `id_user`, then (refused or not) learn the worker it
    landed on from a CONNECT as user 1 on the same connection. (accepted, procid)."""
    ws, _ = await engineio_open(cluster)
    try:
        await ws.send("40" + json.dumps({"id_user": id_user}))
        reply = await recv_packet(ws)
        if reply.startswith("40"):
            handshake = await recv_packet(ws)
            return True, json.loads(handshake[2:])[1]["procid"]
        assert json.loads(reply.removeprefix("44")) == {"message": f"Unknown id_user: {id_user}"}
        await ws.send('40{"id_user":"1"}')
        assert (await recv_packet(ws)).startswith("40{")
        handshake = await recv_packet(ws)
        return False, json.loads(handshake[2:])[1]["procid"]
    finally:
        await ws.close()


async def test_user_deleted_in_the_admin_is_refused_by_every_worker(cluster: Cluster) -> None:
    """Each worker has just accepted user N (so it trusts N without asking the database for
    TTL_S seconds); N is deleted in the admin, through one worker: a CONNECT as N is then
    refused by every worker at once, the other one told by the deletion's broadcast.

    A refusal counts only if it came within TTL_S of that worker's last acceptance (after
    that the worker would ask the database anyway); if a busy machine made every probe
    late, the scenario is tried again with another user."""
    admin = await asyncio.to_thread(AdminSession, cluster)
    workers = {w["procid"] for w in await asyncio.to_thread(cluster.live_workers)}
    for id_user in ("7", "8", "9"):
        accepted_at: dict[str, float] = {}
        for _ in range(200):  # each worker accepts N, the kernel choosing the worker
            started = time.monotonic()
            accepted, procid = await probe(cluster, id_user)
            assert accepted, f"user {id_user} refused before its deletion"
            accepted_at[procid] = started
            if set(accepted_at) == workers:
                break
        assert set(accepted_at) == workers, "the kernel never used one of the workers"
        await asyncio.to_thread(admin.delete, id_user)
        refused_in_time: set[str] = set()
        deadline = max(accepted_at.values()) + TTL_S
        while refused_in_time != workers and time.monotonic() < deadline:
            accepted, procid = await probe(cluster, id_user)
            assert not accepted, f"worker {procid} accepted user {id_user} after its deletion"
            if time.monotonic() - accepted_at[procid] < TTL_S:
                refused_in_time.add(procid)
        if refused_in_time == workers:
            return
    pytest.fail("no try refused the deleted user on every worker within the cache's TTL")
