"""The room page and the landing page in headless Chromium, against real 2-worker clusters.

Each state is saved as a PNG under test-artifacts/browser/. With UPDATE_DOCS_SCREENSHOT=1 the
two-user room page is also copied to docs/room-page.png, the README's picture.
"""

from __future__ import annotations

import os
import shutil
import signal
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import pytest
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from tests.browser.chrome import Page
from tests.integration.servers import ROOT, Cluster, http
from tests.seed import SEED_NAMES

pytestmark = pytest.mark.browser

OpenPage = Callable[..., Page]

ROSTER_JS = """
return Array.from(document.querySelectorAll('#members-body tr')).map((tr) => ({
  id_socket: tr.dataset.idSocket,
  id_user: tr.dataset.idUser,
  procid: tr.dataset.procid,
  name: tr.querySelector('.member-name').textContent,
  mine: tr.classList.contains('mine'),
  this_tab: tr.classList.contains('this-tab'),
}));
"""

# Records every connection state the page shows, so a short "reconnecting" is not missed.
RECORD_STATES_JS = """
window.__states = [document.getElementById('status').dataset.state];
new MutationObserver(() => window.__states.push(document.getElementById('status').dataset.state))
  .observe(document.getElementById('status'), {attributes: true, attributeFilter: ['data-state']});
"""

# Rewrites the roster's X-Workers-Responded header, as when a worker missed the deadline.
PRETEND_PARTIAL_ROSTER_JS = """
window.__realFetch = window.fetch;
window.fetch = async (url, options) => {
  const response = await window.__realFetch(url, options);
  if (!String(url).includes('/users?hydrate=1')) return response;
  const headers = new Headers(response.headers);
  headers.set('X-Workers-Responded', String(Number(headers.get('X-Workers-Expected')) - 1));
  return new Response(await response.text(), {status: response.status, headers});
};
"""


def room_url(cluster: Cluster, room: str, id_user: str) -> str:
    return f"{cluster.url}/ui/{quote(room, safe='')}?id_user={id_user}"


def roster(page: Page) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = page.js(ROSTER_JS)
    return rows


def me(page: Page) -> dict[str, str | None]:
    return {
        "status": page.js("return document.getElementById('status')?.dataset.state"),
        "socket": page.text("#my-socket"),
        "worker": page.text("#my-worker"),
    }


def wait_connected(page: Page, timeout: float = 10) -> dict[str, str | None]:
    """The page is connected and shows its socket id and worker; returns them."""
    page.wait(timeout).until(
        lambda _: (
            me(page)["status"] == "connected"
            and "—" not in (me(page)["worker"], me(page)["socket"])
        ),
        f"{page.name}: connected with a socket id and a worker",
    )
    return me(page)


def wait_roster(page: Page, expected: list[tuple[str, str, str]], timeout: float = 5) -> None:
    """The page lists exactly these (id_user, name, id_socket) rows, in this order."""

    def shows() -> list[tuple[str, str, str]]:
        return [(r["id_user"], r["name"], r["id_socket"]) for r in roster(page)]

    try:
        page.wait(timeout).until(lambda _: shows() == expected)
    except TimeoutException:
        pytest.fail(f"{page.name} shows {shows()} after {timeout} s, expected {expected}")


def select_all_and_type(page: Page, element_id: str, text: str) -> None:
    field = page.driver.find_element(By.ID, element_id)
    field.send_keys(Keys.CONTROL, "a")
    field.send_keys(text)


def test_two_users_see_each_other_rename_live_and_leave(
    shared_cluster: Cluster, open_page: OpenPage
) -> None:
    """Two users in one room see each other with names; renames and departures show live,
    and in the event log.

    The room name needs percent-encoding everywhere (page URL, roster URL, socket query).
    """
    room = "café & co/1"
    john = open_page(room_url(shared_cluster, room, "1"), "john", height=600)
    mary = open_page(room_url(shared_cluster, room, "2"), "mary-375px", width=375, height=812)
    john_me, mary_me = wait_connected(john), wait_connected(mary)
    john_sid, mary_sid = str(john_me["socket"]), str(mary_me["socket"])
    both = [("1", "John", john_sid), ("2", "Mary", mary_sid)]
    wait_roster(john, both)
    wait_roster(mary, both)

    assert john.text("#room-name") == room
    rows = {r["id_socket"]: r for r in roster(john)}
    assert rows[john_sid]["this_tab"] and rows[john_sid]["mine"]
    assert not rows[mary_sid]["mine"]
    live = {w["procid"] for w in shared_cluster.live_workers()}
    assert {john_me["worker"], mary_me["worker"]} <= live
    assert rows[john_sid]["procid"] == john_me["worker"]
    assert rows[mary_sid]["procid"] == mary_me["worker"]
    # 375 px wide: nothing sticks out sideways
    assert mary.js("return document.documentElement.scrollWidth <= window.innerWidth")
    shot = john.screenshot("room-two-users")
    if os.environ.get("UPDATE_DOCS_SCREENSHOT"):  # the README's picture, refreshed on request
        shutil.copyfile(shot, ROOT / "docs" / "room-page.png")
    mary.screenshot("room-two-users-375px")

    # Enter saves at once (no debounce) and the other page shows the new name live, with
    # no reload: the wait bounds a failure, it is not a stopwatch.
    select_all_and_type(john, "name-input", "John Renamed" + Keys.ENTER)
    wait_roster(mary, [("1", "John Renamed", john_sid), ("2", "Mary", mary_sid)], timeout=5)
    john.wait(5).until(lambda _: john.text("#save-state") == "Saved")
    assert http(f"{shared_cluster.url}/users/1")[2]["name"] == "John Renamed"

    # Typing and pausing saves too (~600 ms debounce).
    select_all_and_type(mary, "name-input", "Mary Q")
    wait_roster(john, [("1", "John Renamed", john_sid), ("2", "Mary Q", mary_sid)], timeout=5)
    mary.wait(5).until(lambda _: mary.text("#save-state") == "Saved")
    john.screenshot("room-after-renames")

    # A second tab of user 1: another socket, marked as mine on both of user 1's pages.
    # Mary's next roster is made to say one worker of two answered: she shows it as partial.
    mary.js(PRETEND_PARTIAL_ROSTER_JS)
    john2 = open_page(room_url(shared_cluster, room, "1"), "john-second-tab")
    john2_sid = str(wait_connected(john2)["socket"])
    mary.wait(5).until(lambda _: "1 of 2 workers" in (mary.text("#partial") or ""))
    mary.screenshot("room-partial-roster-375px")
    mary.js("window.fetch = window.__realFetch")
    three = sorted(
        [
            ("1", "John Renamed", john_sid),
            ("1", "John Renamed", john2_sid),
            ("2", "Mary Q", mary_sid),
        ]
    )
    for page in (john, mary, john2):
        wait_roster(page, three)
    assert [r["mine"] for r in roster(john)] == [True, True, False]
    assert sum(r["this_tab"] for r in roster(john)) == 1
    assert john.js("return document.getElementById('name-input').value") == "John Renamed"
    john.screenshot("room-two-tabs-of-one-user")

    # Closing pages removes them from the others.
    mary.close()
    john2.close()
    wait_roster(john, [("1", "John Renamed", john_sid)], timeout=10)

    # John's event log, newest first, has what happened since: Mary's rename in her browser,
    # the second tab's arrival, and both departures.
    def logged() -> list[str]:
        return john.texts("#event-log .what")

    john.wait(5).until(lambda _: len(logged()) >= 4, "the events logged")
    events = logged()
    assert events.index("Mary renamed to Mary Q") > events.index("John Renamed joined")
    assert sorted(events[:2]) == ["John Renamed left", "Mary Q left"]
    assert all(john.texts("#event-log time"))
    john.screenshot("room-after-others-left")


def test_page_reconnects_after_its_worker_is_killed(
    start_cluster: Callable[..., Cluster], open_page: OpenPage, console_allows: list[str]
) -> None:
    """SIGKILL the page's worker: it shows reconnecting, then a new socket id, and reappears."""
    console_allows.append(r"WebSocket connection to .* failed")  # a retry may hit the dead worker
    cluster = start_cluster(workers=2)
    room = "kill-room"
    frank = open_page(room_url(cluster, room, "4"), "frank")
    sonia = open_page(room_url(cluster, room, "7"), "sonia")
    before = wait_connected(frank)
    sonia_sid = str(wait_connected(sonia)["socket"])
    wait_roster(sonia, [("4", "Frank", str(before["socket"])), ("7", "Sonia", sonia_sid)])

    pids = {w["procid"]: w["pid"] for w in cluster.live_workers()}
    pid = pids[before["worker"]]
    assert pid in cluster.children()
    frank.js(RECORD_STATES_JS)
    os.kill(pid, signal.SIGKILL)

    def reconnected() -> bool:
        now = me(frank)
        return now["status"] == "connected" and now["socket"] not in (before["socket"], "—")

    frank.wait(15).until(lambda _: reconnected(), "frank reconnected with a new socket id")
    after = wait_connected(frank)
    assert after["worker"] != before["worker"]
    assert "reconnecting" in frank.js("return window.__states")
    # Sonia may have been on the same worker: then she has a new socket id too.
    sonia_sid = str(wait_connected(sonia, timeout=15)["socket"])
    expected = [("4", "Frank", str(after["socket"])), ("7", "Sonia", sonia_sid)]
    wait_roster(sonia, expected, timeout=5)
    wait_roster(frank, expected, timeout=5)
    assert {r["procid"] for r in roster(sonia)} <= {w["procid"] for w in cluster.live_workers()}
    frank.screenshot("room-after-worker-killed")


def test_unknown_user_gets_the_valid_users_to_choose_from(
    shared_cluster: Cluster, open_page: OpenPage, console_allows: list[str]
) -> None:
    """An unknown id_user gets a clear message and links to the room as each valid user."""
    console_allows.append(r"status of 404")  # the page itself answers 404 Not Found
    room = "lobby"
    page = open_page(room_url(shared_cluster, room, "99"), "unknown-user")
    message = page.text("#choose-message") or ""
    assert "Unknown user" in message and "99" in message
    links = page.js(
        "return Array.from(document.querySelectorAll('.user-list a'))"
        ".map((a) => [a.getAttribute('href'), a.querySelector('.user-name').textContent])"
    )
    assert [href for href, _ in links] == [f"/ui/lobby?id_user={k}" for k in range(1, 11)]
    assert links[4][1] == "Stephanie"
    page.screenshot("room-unknown-user")

    page.driver.find_element(By.CSS_SELECTOR, '.user-list a[data-id-user="5"]').click()
    connected = wait_connected(page)
    wait_roster(page, [("5", "Stephanie", str(connected["socket"]))])

    assert status_of(f"{shared_cluster.url}/ui/lobby") == 200  # no id_user: the same choice
    assert status_of(f"{shared_cluster.url}/ui/{'x' * 101}?id_user=1") == 400  # invalid room
    assert status_of(f"{shared_cluster.url}/ui/?id_user=1&room=") == 400  # the landing form


def test_landing_lists_users_and_live_workers(shared_cluster: Cluster, open_page: OpenPage) -> None:
    """The landing page lists the users, the live workers and the rooms in use (refreshed),
    and opens rooms."""
    page = open_page(f"{shared_cluster.url}/ui/", "landing", height=1180)
    names = page.texts("#users-body .user-name")
    assert names == [u["name"] for u in http(f"{shared_cluster.url}/users")[2]]
    assert names[2:] == SEED_NAMES[2:]  # users 1 and 2 may have been renamed by now
    procids = {w["procid"] for w in shared_cluster.live_workers()}
    page.wait(5).until(
        lambda _: set(page.attrs("#workers-body tr", "data-procid")) == procids,
        "the live workers listed",
    )

    # The links follow the room typed in the form.
    select_all_and_type(page, "pick-room", "maths 101")
    hrefs = page.attrs(".pair-links a", "href")
    assert hrefs == ["/ui/maths%20101?id_user=1", "/ui/maths%20101?id_user=2"]

    # A socket opening elsewhere shows in the cluster view at its next refresh (every 3 s).
    def sockets_shown() -> int:
        return sum(int(n) for n in page.texts("#workers-body td:nth-child(4)"))

    baseline = sockets_shown()
    other = open_page(room_url(shared_cluster, "maths 101", "3"), "mike")
    wait_connected(other)
    page.wait(5).until(lambda _: sockets_shown() == baseline + 1, "the new socket counted")
    # ... and its room among the rooms in use, a link to its page as the user picked
    page.wait(5).until(
        lambda _: page.texts('#rooms-list li[data-room="maths 101"]') == ["maths 101 · 1 socket"],
        "the room in use listed",
    )
    link = page.attrs('#rooms-list li[data-room="maths 101"] a', "href")
    assert link == ["/ui/maths%20101?id_user=1"]
    page.screenshot("landing")

    # The form opens the room as the chosen user.
    page.driver.find_element(By.CSS_SELECTOR, '#pick-user option[value="2"]').click()
    page.driver.find_element(By.CSS_SELECTOR, "#open-form button[type=submit]").click()
    connected = wait_connected(page)
    assert page.driver.current_url.endswith("/ui/maths%20101?id_user=2")
    wait_roster(
        page,
        [
            ("2", _name(shared_cluster, "2"), str(connected["socket"])),
            ("3", "Mike", str(me(other)["socket"])),
        ],
    )


def status_of(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def _name(cluster: Cluster, id_user: str) -> str:
    name: str = http(f"{cluster.url}/users/{id_user}")[2]["name"]
    return name
