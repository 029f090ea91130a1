"""PUT /users/<id> per client address: HTTP_RENAMES_PER_MINUTE_PER_ADDRESS a minute per
worker, then 429 JSON with Retry-After (users.ratelimit)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client
from pytest_django.fixtures import Settings

from rooms import runtime
from users import ratelimit, services
from users.models import PlaygroundUser
from users.ratelimit import AddressRateLimit

pytestmark = pytest.mark.usefixtures("seeded")


def put(client: Client, name: str, address: str = "203.0.113.7", method: str = "put") -> Any:
    return getattr(client, method)(
        "/users/1", {"name": name}, content_type="application/json", REMOTE_ADDR=address
    )


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_renames_past_the_limit_get_429_with_retry_after(
    client: Client, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Five renames a minute: the sixth is refused with a JSON error and Retry-After (12 s
    until the next token at 5 a minute), and the name is not changed by it."""
    monkeypatch.setattr(ratelimit, "RENAMES", AddressRateLimit(clock=FakeClock()))
    settings.HTTP_RENAMES_PER_MINUTE_PER_ADDRESS = 5
    for i in range(5):
        assert put(client, f"Name {i}").status_code == 204
    refused = put(client, "Too many")
    assert refused.status_code == 429
    assert refused["Retry-After"] == "12"
    assert "Too many renames" in refused.json()["error"]
    assert PlaygroundUser.objects.get(pk=1).name == "Name 4"
    patched = put(client, "Patched", method="patch")
    assert patched.status_code == 429


def test_each_address_has_its_own_budget_and_reads_are_not_counted(
    client: Client, settings: Settings
) -> None:
    """Another address still renames; GETs are never limited."""
    settings.HTTP_RENAMES_PER_MINUTE_PER_ADDRESS = 1
    assert put(client, "First").status_code == 204
    assert put(client, "Second").status_code == 429
    assert put(client, "Other", address="198.51.100.1").status_code == 204
    for _ in range(10):
        assert client.get("/users/1", REMOTE_ADDR="203.0.113.7").status_code == 200


def test_zero_means_no_limit(client: Client, settings: Settings) -> None:
    settings.HTTP_RENAMES_PER_MINUTE_PER_ADDRESS = 0
    for i in range(70):
        assert put(client, f"N{i}").status_code == 204


def test_the_bucket_refills_at_the_rate() -> None:
    """60 a minute: the 61st waits 1 s, and one second later one more is allowed."""
    clock = FakeClock()
    limit = AddressRateLimit(clock=clock)
    assert [limit.retry_after("a", 60) for _ in range(60)] == [0] * 60
    assert limit.retry_after("a", 60) == 1
    clock.now += 1.0
    assert limit.retry_after("a", 60) == 0
    assert limit.retry_after("a", 60) == 1


def test_the_table_is_bounded() -> None:
    """A spread of addresses costs at most max_addresses buckets; refilled ones go first."""
    clock = FakeClock()
    limit = AddressRateLimit(max_addresses=100, clock=clock)
    for i in range(1000):
        limit.retry_after(f"10.0.{i // 256}.{i % 256}", 6)
    assert len(limit) <= 100
    clock.now += 60  # every bucket has refilled: each is forgotten as the table is used
    for _ in range(20):
        limit.retry_after("10.9.9.9", 6)
    assert len(limit) < 100


@pytest.fixture
def reach(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int | None]]:
    """The room events a rename of any user will publish, as the cluster would answer;
    a fresh fan-out table on a clock that stands still."""
    answer: list[int | None] = [0]
    monkeypatch.setattr(ratelimit, "RENAME_FANOUT", AddressRateLimit(clock=FakeClock()))
    services.provide_rename_reach(lambda id_user: answer[0])
    yield answer
    services.provide_rename_reach(runtime.rename_reach)


def test_renames_are_charged_the_room_events_they_publish(
    client: Client, settings: Settings, reach: list[int | None]
) -> None:
    """1000 room events a minute, a user in 400 rooms: two renames pass, the third is
    refused with 429 and Retry-After (200 left, 200 more at 1000 a minute: 12 s) and
    changes nothing; another address still renames."""
    settings.HTTP_RENAME_FANOUT_PER_MINUTE_PER_ADDRESS = 1000
    reach[0] = 400
    assert put(client, "One").status_code == 204
    assert put(client, "Two").status_code == 204
    refused = put(client, "Three")
    assert refused.status_code == 429
    assert refused["Retry-After"] == "12"
    assert "room events" in refused.json()["error"]
    assert PlaygroundUser.objects.get(pk=1).name == "Two"
    assert put(client, "Other", address="198.51.100.1").status_code == 204


def test_a_rename_reaching_more_than_a_minute_of_budget_waits_in_proportion(
    client: Client, settings: Settings, reach: list[int | None]
) -> None:
    """A user in 3000 rooms with 1000 a minute: one rename passes on a full budget, and
    the next waits until the 2000 overdrawn and 1000 more have refilled: 180 s."""
    settings.HTTP_RENAME_FANOUT_PER_MINUTE_PER_ADDRESS = 1000
    reach[0] = 3000
    assert put(client, "Big").status_code == 204
    refused = put(client, "Again")
    assert (refused.status_code, refused["Retry-After"]) == (429, "180")


def test_a_rename_of_unknown_reach_costs_one_and_zero_means_no_limit(
    client: Client, settings: Settings, reach: list[int | None]
) -> None:
    settings.HTTP_RENAME_FANOUT_PER_MINUTE_PER_ADDRESS = 2
    reach[0] = None  # the cluster did not answer
    assert [put(client, f"N{i}").status_code for i in range(3)] == [204, 204, 429]
    settings.HTTP_RENAME_FANOUT_PER_MINUTE_PER_ADDRESS = 0
    reach[0] = 10**9
    assert put(client, "Unlimited").status_code == 204


def test_a_cost_is_taken_whole_and_may_overdraw_a_full_bucket() -> None:
    clock = FakeClock()
    limit = AddressRateLimit(clock=clock)
    assert limit.retry_after("a", 60, cost=50) == 0
    assert limit.retry_after("a", 60, cost=20) == 10  # 10 left, 10 more at 1 a second
    assert limit.retry_after("a", 60, cost=10) == 0
    clock.now += 60
    assert limit.retry_after("a", 60, cost=600) == 0  # a full bucket pays more than it holds
    assert limit.retry_after("a", 60, cost=1) == 541
