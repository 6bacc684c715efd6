"""Back-off delays: exponential caps, full jitter, the attempt limit."""

from __future__ import annotations

import pytest

from pushwire.client import Backoff
from pushwire.errors import UsageError


def test_the_cap_doubles_per_failure_up_to_the_maximum() -> None:
    backoff = Backoff(min_delay_seconds=0.5, max_delay_seconds=4.0)

    caps = [backoff.delay_seconds(failures, uniform=lambda: 1.0) for failures in range(6)]

    assert caps == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]


def test_full_jitter_scales_the_cap_by_a_uniform_draw() -> None:
    backoff = Backoff(min_delay_seconds=1.0, max_delay_seconds=10.0)

    assert backoff.delay_seconds(2, uniform=lambda: 0.25) == 1.0
    assert backoff.delay_seconds(2, uniform=lambda: 0.0) == 0.0


def test_random_delays_stay_between_zero_and_the_cap() -> None:
    backoff = Backoff(min_delay_seconds=0.1, max_delay_seconds=1.0)

    delays = [backoff.delay_seconds(failures) for failures in range(200)]

    assert all(0 <= delay <= 1.0 for delay in delays)
    assert len(set(delays)) > 100  # jittered, not a fixed schedule


def test_a_huge_failure_count_does_not_overflow() -> None:
    assert Backoff(1.0, 30.0).delay_seconds(10_000, uniform=lambda: 1.0) == 30.0


def test_the_attempt_limit_is_counted_in_failures_in_a_row() -> None:
    assert not Backoff(max_attempts=None).gives_up_after(1_000_000)
    assert not Backoff(max_attempts=3).gives_up_after(2)
    assert Backoff(max_attempts=3).gives_up_after(3)


@pytest.mark.parametrize(
    "settings",
    [
        {"min_delay_seconds": -1.0},
        {"min_delay_seconds": 5.0, "max_delay_seconds": 1.0},
        {"max_attempts": 0},
    ],
)
def test_impossible_settings_are_refused(settings: dict[str, float]) -> None:
    with pytest.raises(UsageError):
        Backoff(**settings)  # type: ignore[arg-type]
