"""The shared keep-alive timer, on a fake clock and on the event loop's."""

from __future__ import annotations

from pushwire.testing import FakeClock
from pushwire.transports.base import Ticker
from tests.waiting import wait_until


def test_ticks_come_once_every_interval() -> None:
    clock = FakeClock()
    ticks: list[float] = []
    ticker = Ticker(10, lambda: ticks.append(clock.time()), clock=clock)

    ticker.start()
    clock.advance(35)

    assert ticks == [10.0, 20.0, 30.0]


def test_no_tick_comes_before_the_first_interval_is_over() -> None:
    clock = FakeClock()
    ticks: list[float] = []
    ticker = Ticker(10, lambda: ticks.append(clock.time()), clock=clock)

    ticker.start()
    clock.advance(9.9)

    assert ticks == []


def test_stop_stops_the_ticks() -> None:
    clock = FakeClock()
    ticks: list[float] = []
    ticker = Ticker(10, lambda: ticks.append(clock.time()), clock=clock)
    ticker.start()
    clock.advance(25)

    ticker.stop()
    clock.advance(100)

    assert ticks == [10.0, 20.0]
    assert clock.pending() == 0


def test_a_tick_may_stop_its_own_ticker() -> None:
    clock = FakeClock()
    ticks: list[float] = []

    def tick() -> None:
        ticks.append(clock.time())
        ticker.stop()

    ticker = Ticker(10, tick, clock=clock)

    ticker.start()
    clock.advance(100)

    assert ticks == [10.0]


def test_an_interval_of_zero_never_ticks() -> None:
    clock = FakeClock()
    ticks: list[float] = []
    ticker = Ticker(0, lambda: ticks.append(clock.time()), clock=clock)

    ticker.start()
    clock.advance(1000)

    assert ticks == []
    assert clock.pending() == 0


async def test_without_a_clock_the_ticker_runs_on_the_event_loop() -> None:
    ticks: list[int] = []
    ticker = Ticker(0.01, lambda: ticks.append(1))

    ticker.start()
    await wait_until(lambda: len(ticks) >= 3, message="three ticks")
    ticker.stop()

    assert len(ticks) >= 3
