"""The heap trimmer: glibc's malloc_trim every minute, and nothing where there is none."""

from __future__ import annotations

import ctypes.util
import sys

import pytest

from pushwire.server.heap import HeapTrimmer, glibc_malloc_trim
from pushwire.testing import FakeClock


def test_it_trims_once_a_minute_until_stopped() -> None:
    clock = FakeClock()
    calls: list[int] = []

    def trim(pad: int) -> int:
        calls.append(pad)
        return 1

    trimmer = HeapTrimmer(clock=clock, trim=trim)
    trimmer.start()

    clock.advance(59)
    assert calls == []
    clock.advance(1)
    clock.advance(120)
    assert calls == [0, 0, 0]
    assert trimmer.runs == 3

    trimmer.stop()
    clock.advance(600)
    assert calls == [0, 0, 0]
    assert clock.pending() == 0


def test_a_failing_trim_is_given_up_and_the_timer_stops(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()

    def broken(pad: int) -> int:
        raise OSError("no")

    trimmer = HeapTrimmer(clock=clock, trim=broken)
    trimmer.start()
    clock.advance(60)

    assert "malloc_trim failed" in caplog.text
    assert clock.pending() == 0
    assert trimmer.runs == 0


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or ctypes.util.find_library("c") is None,
    reason="glibc only",
)
def test_on_linux_the_real_malloc_trim_is_found_and_runs() -> None:
    trim = glibc_malloc_trim()

    assert trim is not None
    assert trim(0) in (0, 1)  # 1: memory was released, 0: there was none to release
