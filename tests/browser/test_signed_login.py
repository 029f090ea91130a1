"""The room page in signed identity mode, in headless Chromium against a real cluster: a
visitor who is not logged in is sent to log in; logged in as a demo account, the page
connects with that account's token as its user, whatever ?id_user says, and renames it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from urllib.parse import quote

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from tests.browser.chrome import Page
from tests.browser.test_pages import me, roster, select_all_and_type, wait_connected
from tests.integration.conftest import module_cluster
from tests.integration.servers import ROOT, Cluster, RedisServer, http

pytestmark = pytest.mark.browser
OpenPage = Callable[..., Page]
PASSWORD = "demo-password-for-tests"


def with_demo_accounts(
    workers: int, redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory, **env: str
) -> Iterator[Cluster]:
    """A cluster with IDENTITY_MODE=signed, and the demo accounts user1..user10."""
    for cluster in module_cluster(
        workers, redis_server, tmp_path_factory, IDENTITY_MODE="signed", **env
    ):
        done = subprocess.run(
            [sys.executable, "manage.py", "demo_accounts", "--password", PASSWORD],
            cwd=ROOT, env=cluster.env(), capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        yield cluster


@pytest.fixture(scope="module")
def signed_cluster(
    redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    """2 workers in signed mode."""
    yield from with_demo_accounts(2, redis_server, tmp_path_factory)


def log_in(page: Page, username: str) -> None:
    page.wait(5).until(lambda _: "/accounts/login/" in page.driver.current_url)
    page.driver.find_element(By.ID, "id_username").send_keys(username)
    page.driver.find_element(By.ID, "id_password").send_keys(PASSWORD + Keys.ENTER)


def test_a_visitor_logs_in_and_the_page_is_that_accounts_user(
    signed_cluster: Cluster, open_page: OpenPage
) -> None:
    """/ui/Maths?id_user=4 without a session shows the login page; logging in as user3
    lands on the room page, connected, showing user 3 (Mike) and not user 4; a rename
    from the page (its session, CSRF) is saved."""
    url = f"{signed_cluster.url}/ui/{quote('Maths')}?id_user=4"
    page = open_page(url, "signed-login")
    page.wait(5).until(lambda _: "/accounts/login/" in page.driver.current_url)
    page.screenshot("signed-login")
    log_in(page, "user3")
    page.wait(5).until(lambda _: "/ui/Maths" in page.driver.current_url)
    mine = wait_connected(page)
    assert page.text("#my-id-user") == "3"
    page.wait(5).until(
        lambda _: [(r["id_user"], r["name"]) for r in roster(page)] == [("3", "Mike")]
    )
    assert roster(page)[0]["id_socket"] == mine["socket"]
    page.screenshot("signed-room")

    select_all_and_type(page, "name-input", "Mike Signed" + Keys.ENTER)
    page.wait(5).until(lambda _: page.text("#save-state") == "Saved")
    assert http(f"{signed_cluster.url}/users/3")[2]["name"] == "Mike Signed"
    assert http(f"{signed_cluster.url}/users/4")[2]["name"] == "Frank"


def test_a_wrong_password_stays_on_the_login_page(
    signed_cluster: Cluster, open_page: OpenPage
) -> None:
    """A wrong password is told so and reaches no room page."""
    page = open_page(f"{signed_cluster.url}/ui/Maths", "signed-wrong-password")
    page.wait(5).until(lambda _: "/accounts/login/" in page.driver.current_url)
    page.driver.find_element(By.ID, "id_username").send_keys("user3")
    page.driver.find_element(By.ID, "id_password").send_keys("not-it" + Keys.ENTER)
    page.wait(5).until(lambda _: page.text("[role=alert]") == "Wrong username or password.")
    assert "/accounts/login/" in page.driver.current_url


TOKEN_MAX_AGE = 5  # whole seconds (TimestampSigner): room for the page to load and connect


@pytest.fixture
def short_token_cluster(
    redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    """1 worker in signed mode whose tokens expire after TOKEN_MAX_AGE seconds."""
    yield from with_demo_accounts(
        1, redis_server, tmp_path_factory, IDENTITY_TOKEN_MAX_AGE=str(TOKEN_MAX_AGE)
    )


def test_a_page_open_past_its_tokens_age_reconnects_with_a_fresh_one(
    short_token_cluster: Cluster, open_page: OpenPage
) -> None:
    """The token a page was served with expires (IDENTITY_TOKEN_MAX_AGE); when its worker
    dies after that, the page reconnects with a token asked of POST /auth/token on its
    login session, instead of being refused as expired."""
    page = open_page(f"{short_token_cluster.url}/ui/Maths", "signed-token-age")
    log_in(page, "user5")
    first = wait_connected(page)
    time.sleep(TOKEN_MAX_AGE + 1)  # the served token is past its age: the server refuses it
    [worker] = short_token_cluster.children()
    os.kill(worker, signal.SIGKILL)
    page.wait(30).until(
        lambda _: (
            me(page)["status"] == "refused" or me(page)["socket"] not in ("—", first["socket"])
        ),
        "a new socket or a refusal",
    )
    assert me(page)["status"] != "refused", page.text("#notice")
    again = wait_connected(page)
    page.wait(5).until(lambda _: [r["id_socket"] for r in roster(page)] == [again["socket"]])
