"""The shared keep-alive timer."""

from __future__ import annotations

import asyncio

from pushwire.transports.base import Ticker
from tests.waiting import wait_until


async def test_ticks_repeat_until_stopped() -> None:
    ticks: list[int] = []
    ticker = Ticker(0.01, lambda: ticks.append(1))

    ticker.start()
    await wait_until(lambda: len(ticks) >= 3, message="three ticks")
    ticker.stop()
    seen = len(ticks)
    await asyncio.sleep(0.05)  # deliberately let five intervals pass: no tick may come

    assert seen >= 3
    assert len(ticks) == seen


async def test_an_interval_of_zero_never_ticks() -> None:
    ticks: list[int] = []
    ticker = Ticker(0, lambda: ticks.append(1))

    ticker.start()
    await asyncio.sleep(0.05)  # deliberately let time pass: no tick may come
    ticker.stop()

    assert ticks == []
