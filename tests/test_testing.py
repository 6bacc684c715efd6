"""FakeClock: time that moves only when a test advances it."""

from __future__ import annotations

import functools

import pytest

from pushwire.testing import FakeClock
from pushwire.transports.base import Clock


def test_time_stands_still_until_advanced() -> None:
    clock: Clock = FakeClock(start=100.0)

    before = clock.time()

    assert before == 100.0
    assert clock.time() == 100.0


def test_advance_runs_due_callbacks_in_time_order_at_their_own_time() -> None:
    clock = FakeClock()
    ran: list[tuple[str, float]] = []
    clock.call_later(3, lambda: ran.append(("three", clock.time())))
    clock.call_later(1, lambda: ran.append(("one", clock.time())))
    clock.call_later(2, lambda: ran.append(("two", clock.time())))

    clock.advance(5)

    assert ran == [("one", 1.0), ("two", 2.0), ("three", 3.0)]
    assert clock.time() == 5.0


def test_callbacks_due_at_the_same_time_run_in_scheduling_order() -> None:
    clock = FakeClock()
    ran: list[str] = []
    for name in ("a", "b", "c"):
        clock.call_later(1, functools.partial(ran.append, name))

    clock.advance(1)

    assert ran == ["a", "b", "c"]


def test_a_callback_not_yet_due_waits_for_a_later_advance() -> None:
    clock = FakeClock()
    ran: list[float] = []
    clock.call_later(10, lambda: ran.append(clock.time()))

    clock.advance(9.5)
    early = list(ran)
    clock.advance(0.5)

    assert early == []
    assert ran == [10.0]


def test_a_cancelled_callback_never_runs() -> None:
    clock = FakeClock()
    ran: list[int] = []
    timer = clock.call_later(1, lambda: ran.append(1))

    timer.cancel()
    clock.advance(2)

    assert ran == []
    assert clock.pending() == 0


def test_callbacks_scheduled_by_callbacks_run_in_the_same_advance_when_due() -> None:
    clock = FakeClock()
    ran: list[float] = []

    def again() -> None:
        ran.append(clock.time())
        clock.call_later(1, again)

    clock.call_later(1, again)
    clock.advance(3.5)

    assert ran == [1.0, 2.0, 3.0]
    assert clock.pending() == 1  # the one due at 4


def test_time_cannot_be_moved_back() -> None:
    clock = FakeClock()

    with pytest.raises(ValueError, match="cannot go back"):
        clock.advance(-1)
