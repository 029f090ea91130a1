from rooms.runner.recycling import STAGGER_S, Recycling


def test_an_idle_worker_past_the_growth_is_due() -> None:
    recycling = Recycling(growth=0.1, idle_s=30)
    assert recycling.due(start_kb=100_000, rss_kb=110_001, idle_for=30)
    assert not recycling.due(start_kb=100_000, rss_kb=110_000, idle_for=30)
    assert not recycling.due(start_kb=100_000, rss_kb=200_000, idle_for=29.9)


def test_no_growth_is_never_due() -> None:
    assert not Recycling(growth=0, idle_s=0).due(start_kb=1, rss_kb=10**9, idle_for=10**6)


def test_workers_take_turns_by_slot() -> None:
    third = Recycling(growth=0.1, idle_s=30, slot=2)
    assert not third.due(start_kb=100, rss_kb=200, idle_for=30 + 2 * STAGGER_S - 0.1)
    assert third.due(start_kb=100, rss_kb=200, idle_for=30 + 2 * STAGGER_S)
