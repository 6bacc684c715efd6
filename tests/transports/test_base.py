"""The shared keep-alive timer."""

from __future__ import annotations

import asyncio

from pushwire.transports.base import Ticker


async def test_ticks_repeat_until_stopped() -> None:
    ticks: list[int] = []
    ticker = Ticker(0.01, lambda: ticks.append(1))

    ticker.start()
    for _ in range(500):
        if len(ticks) >= 3:
            break
        await asyncio.sleep(0.01)
    ticker.stop()
    seen = len(ticks)
    await asyncio.sleep(0.05)

    assert seen >= 3
    assert len(ticks) == seen


async def test_an_interval_of_zero_never_ticks() -> None:
    ticks: list[int] = []
    ticker = Ticker(0, lambda: ticks.append(1))

    ticker.start()
    await asyncio.sleep(0.05)
    ticker.stop()

    assert ticks == []
