"""The room page at its edges: a room name as long as allowed, a cluster that is down, and a
page the tab leaves for another and comes back to."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from urllib.parse import quote

import pytest

from tests.browser.chrome import Page
from tests.browser.test_pages import room_url, select_all_and_type, wait_connected
from tests.integration.servers import Cluster, http, wait_until

pytestmark = pytest.mark.browser

OpenPage = Callable[..., Page]

# Elements whose box reaches past the viewport's right edge or past their card's (the room
# head counts as a card); absolutely positioned ones (the skip link, hidden captions) aside.
OVERFLOWING_JS = """
const width = document.documentElement.clientWidth;
const out = [];
for (const e of document.querySelectorAll('body *')) {
  const style = getComputedStyle(e);
  if (style.position === 'absolute' || style.display === 'none') continue;
  const box = e.getBoundingClientRect();
  if (!box.width) continue;
  const card = e.parentElement && e.parentElement.closest('.card, .room-head, .topbar-inner');
  const limit = card ? card.getBoundingClientRect().right : width;
  if (box.right > limit + 0.5 || box.right > width + 0.5) {
    out.push(`${e.tagName.toLowerCase()}#${e.id}.${e.className}: right ${box.right} > ${limit}`);
  }
}
return {scrollWidth: document.documentElement.scrollWidth, width, out};
"""

LONG_ROOM = "Room" + "x" * 90 + "-long!"  # 100 characters, no space to break at


PAGES = {
    "room": lambda cluster: room_url(cluster, LONG_ROOM, "1"),
    "choose-user": lambda cluster: f"{cluster.url}/ui/{quote(LONG_ROOM, safe='')}",
    "landing": lambda cluster: f"{cluster.url}/ui/",  # the room typed into its form
}


@pytest.mark.parametrize("width", [375, 1280])
@pytest.mark.parametrize("kind", PAGES)
def test_a_100_character_room_name_wraps_inside_its_card(
    kind: str,
    width: int,
    shared_cluster: Cluster,
    open_page: OpenPage,
    console_allows: list[str],
) -> None:
    """A room name of the longest allowed length, with no spaces, breaks across lines on
    every page that shows it: nothing reaches past its card or the viewport, and the page
    never scrolls sideways."""
    console_allows.append(r"status of 404")  # the choose-user page answers 404
    assert len(LONG_ROOM) == 100
    page = open_page(PAGES[kind](shared_cluster), f"long-room-{kind}-{width}", width=width)
    if kind == "room":
        wait_connected(page)
        assert page.text("#room-name") == LONG_ROOM
    if kind == "landing":
        select_all_and_type(page, "pick-room", LONG_ROOM)
        page.wait().until(lambda _: page.text("#pair-room") == LONG_ROOM, "the pair label")
    assert LONG_ROOM in page.js("return document.body.innerText").replace("\n", "")
    layout = page.js(OVERFLOWING_JS)
    page.screenshot(f"long-room-name-{kind}-{width}px")
    assert layout["out"] == [], layout
    assert layout["scrollWidth"] <= layout["width"], layout


def test_cluster_down_the_page_says_why_and_since_when(
    start_cluster: Callable[..., Cluster], open_page: OpenPage, console_allows: list[str]
) -> None:
    """With every worker gone the page shows, as visible text and not only in a tooltip,
    that it lost the connection, when, why, and that it keeps trying; once connected again
    the text goes away."""
    console_allows += [r"WebSocket connection to .* failed", r"ERR_CONNECTION_REFUSED"]
    cluster = start_cluster(workers=1)
    page = open_page(room_url(cluster, "down-room", "3"), "cluster-down", width=375)
    wait_connected(page)
    assert page.js("return document.getElementById('status-detail').hidden") is True

    cluster.stop()
    page.wait(10).until(
        lambda _: (
            "attempt"
            in (page.js("return document.getElementById('status-detail').innerText") or "")
        ),
        "the page explains its reconnecting after a failed attempt",
    )
    detail = page.js("return document.getElementById('status-detail').innerText")
    assert page.js("return document.getElementById('status').dataset.state") == "reconnecting"
    assert re.search(r"since \d{1,2}:\d{2}:\d{2}", detail), detail
    assert "the server closed the connection" in detail, detail
    assert re.search(r"attempt \d+ failed", detail), detail
    page.screenshot("room-cluster-down-375px")

    cluster.start()
    page.wait(20).until(
        lambda _: page.js("return document.getElementById('status').dataset.state") == "connected",
        "the page reconnected",
    )
    assert page.js("return document.getElementById('status-detail').hidden") is True


def test_a_page_left_for_another_leaves_its_room_at_once_and_rejoins_when_shown_again(
    shared_cluster: Cluster, open_page: OpenPage
) -> None:
    """Another page opened in the same tab takes the room page's socket out of its room at
    once, not at the ping timeout (the back/forward cache keeps a left page, and its open
    socket, alive); going back connects it again."""
    room = f"left-{uuid.uuid4().hex[:8]}"
    page = open_page(room_url(shared_cluster, room, "1"), "john")
    wait_connected(page)
    assert [e["id_user"] for e in users_in(shared_cluster, room)] == ["1"]
    page.driver.get(f"{shared_cluster.url}/")
    wait_until(lambda: users_in(shared_cluster, room) == [], 3, "the room to empty")
    page.driver.back()
    wait_connected(page)
    wait_until(
        lambda: [e["id_user"] for e in users_in(shared_cluster, room)] == ["1"],
        5,
        "the page back in its room",
    )


def users_in(cluster: Cluster, room: str) -> list[dict[str, str]]:
    status, _, body = http(f"{cluster.url}/{quote(room, safe='')}/users")
    assert status == 200, (status, body)
    return list(body)
