"""Per-connection budgets, on a clock the test moves."""

from __future__ import annotations

from rooms.cluster.known_users import KnownUsers
from rooms.socketio.limits import ConnectionsPerAddress, TokenBucket
from users.ratelimit import AddressRateLimit


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_gets_the_rate_then_the_next_is_refused() -> None:
    """identity-change at 20/s: 20 at once pass, the 21st in the burst is refused."""
    bucket = TokenBucket(20, clock=Clock())
    assert all(bucket.take() for _ in range(20))
    assert not bucket.take()


def test_the_bucket_refills_at_the_configured_rate() -> None:
    clock = Clock()
    bucket = TokenBucket(20, clock=clock)
    while bucket.take():
        pass
    clock.now += 0.25  # 5 tokens at 20/s
    assert sum(bucket.take() for _ in range(10)) == 5
    clock.now += 10  # never more than the burst
    assert sum(bucket.take() for _ in range(30)) == 20


def test_a_burst_may_be_larger_than_the_rate() -> None:
    bucket = TokenBucket(50, burst=100, clock=Clock())
    assert sum(bucket.take() for _ in range(150)) == 100


def test_connections_per_address_are_counted_and_released() -> None:
    open_ = ConnectionsPerAddress()
    assert open_.admit("10.0.0.1", 2) and open_.admit("10.0.0.1", 2)
    assert not open_.admit("10.0.0.1", 2)
    assert open_.admit("10.0.0.2", 2)  # another address is not affected
    open_.release("10.0.0.1")
    assert open_["10.0.0.1"] == 1 and open_.admit("10.0.0.1", 2)


def test_an_id_found_missing_is_remembered_for_the_ttl_and_forgotten_on_save() -> None:
    clock = Clock()
    users = KnownUsers(ttl=2.0, clock=clock)
    users.remember_missing("42")
    assert users.is_missing("42") and "42" not in users
    clock.now += 2.5
    assert not users.is_missing("42")
    users.remember_missing("42")
    users.forget("42")  # a save of user 42 reached this worker
    assert not users.is_missing("42")


def test_a_cost_is_taken_whole_or_not_at_all() -> None:
    """Bytes of frames: a frame as large as the burst passes on a full bucket, a second
    one waits for the refill."""
    clock = Clock()
    bucket = TokenBucket(100_000, burst=1_000_000, clock=clock)
    assert bucket.take(1_000_000)
    assert not bucket.take(600_000)
    clock.now += 6
    assert bucket.take(600_000)


def test_each_address_has_its_own_budget_per_minute() -> None:
    """Refused CONNECTs per address (users.ratelimit.REFUSED_CONNECTS): `exhausted` says
    so without taking, and an address never counted is not exhausted."""
    clock = Clock()
    budgets = AddressRateLimit(clock=clock)
    assert all(budgets.retry_after("10.0.0.1", 3) == 0 for _ in range(3))
    assert budgets.retry_after("10.0.0.1", 3)
    assert budgets.exhausted("10.0.0.1", 3)
    assert budgets.retry_after("10.0.0.2", 3) == 0 and not budgets.exhausted("10.0.0.2", 3)
    assert budgets.retry_after("10.0.0.1", 0) == 0  # 0: no limit
    assert not budgets.exhausted("10.0.0.1", 0)
    assert not budgets.exhausted("10.0.0.3", 3)  # never refused: nothing kept
    clock.now += 20  # one token back at 3 a minute
    assert not budgets.exhausted("10.0.0.1", 3)


def test_a_take_may_cost_many_tokens_and_waits_for_all_of_them() -> None:
    """Bytes x rooms at 1000 a second: 600 pass, the next 600 are refused with 400 left
    (and take nothing), and pass once 0.2 s has refilled the rest."""
    clock = Clock()
    bucket = TokenBucket(1000, clock=clock)
    assert bucket.take(600)
    assert not bucket.take(600)
    assert bucket.tokens == 400
    clock.now += 0.2
    assert bucket.take(600)


def test_a_cost_larger_than_the_burst_is_never_taken() -> None:
    clock = Clock()
    bucket = TokenBucket(1000, clock=clock)
    assert not bucket.take(1001)
    clock.now += 3600
    assert not bucket.take(1001)
    assert bucket.take(1000)
