"""How soon runcluster's supervisor restarts a worker that died."""

from __future__ import annotations

from rooms.runner.supervisor import restart_delay


def test_a_worker_that_had_been_running_is_restarted_at_once() -> None:
    assert restart_delay(0) == 0.0


def test_a_worker_that_keeps_dying_backs_off_up_to_five_seconds() -> None:
    assert [restart_delay(n) for n in range(1, 9)] == [0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0]
