"""The periodic ``malloc_trim(0)`` of ``pushwire serve``: it finds glibc, gives freed
memory back, runs on its interval, and backs off when a trim is slow."""

from __future__ import annotations

import asyncio
import platform
import time
from collections.abc import Callable

import pytest

from pushwire.server.memory_trim import MemoryTrimmer, malloc_trim, next_delay, rss_bytes

glibc = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's")


@glibc
def test_freed_memory_between_live_allocations_comes_back() -> None:
    # 2 KiB blocks (past pymalloc's 512 bytes, so glibc's), every tenth kept: the freed
    # ones lie between live ones, below the heap's top, where free() cannot return them.
    blocks = [bytearray(2048) for _ in range(30_000)]
    kept = blocks[::10]
    blocks.clear()
    trimmer = MemoryTrimmer(interval=60)
    before = rss_bytes()

    took = trimmer.trim_now()

    assert malloc_trim() is not None
    assert trimmer.trims == 1
    assert trimmer.returned_bytes >= 10 * 2**20, (before, trimmer.returned_bytes)
    assert 0 < took == trimmer.longest_seconds
    assert len(kept) == 3_000


def _trim_taking(seconds: float) -> Callable[[int], int]:
    """A stand-in for malloc_trim that takes a known time (glibc's depends on the heap)."""

    def trim(pad: int) -> int:
        time.sleep(seconds)
        return 1

    return trim


async def test_trims_on_its_interval_until_stopped() -> None:
    trimmer = MemoryTrimmer(interval=0.05, trim=_trim_taking(0))

    assert trimmer.start()
    await asyncio.sleep(0.4)
    trimmer.stop()
    done = trimmer.trims
    await asyncio.sleep(0.2)

    assert 3 <= done <= 9  # every 0.05 s: about 8 in 0.4 s
    assert trimmer.trims == done


async def test_a_slow_trim_waits_a_thousand_times_as_long_for_the_next() -> None:
    # 0.2 ms a trim: 0.2 s until the next, not the 0.05 s interval.
    trimmer = MemoryTrimmer(interval=0.05, trim=_trim_taking(0.0002))

    trimmer.start()
    await asyncio.sleep(0.5)
    trimmer.stop()

    assert 1 <= trimmer.trims <= 3


async def test_an_interval_of_zero_schedules_nothing() -> None:
    trimmer = MemoryTrimmer(interval=0)

    assert not trimmer.start()
    await asyncio.sleep(0.05)

    assert trimmer.trims == 0


@pytest.mark.parametrize(
    ("took", "delay"),
    [(0.0005, 60.0), (0.06, 60.0), (0.1, 100.0), (0.3, 300.0)],
)
def test_a_slow_trim_pushes_the_next_one_back(took: float, delay: float) -> None:
    assert next_delay(60.0, took) == pytest.approx(delay)


async def test_trims_turning_slow_are_a_warning_once(caplog: pytest.LogCaptureFixture) -> None:
    trimmer = MemoryTrimmer(interval=0.01, trim=_trim_taking(0.00005))

    with caplog.at_level("INFO", logger="pushwire.server.memory_trim"):
        trimmer.start()
        await asyncio.sleep(0.4)
        trimmer.stop()

    said = [r for r in caplog.records if "malloc_trim took" in r.message]
    assert trimmer.trims >= 2
    assert len(said) == 1
    assert said[0].levelname == "WARNING"
    assert "the event loop waited" in said[0].message
