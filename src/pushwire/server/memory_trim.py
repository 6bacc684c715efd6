"""Hand memory the process has freed back to the operating system, now and then (glibc).

A push server frees as much as it allocates: connections come and go, publications
age out of history and recovery windows. glibc's allocator keeps what was freed
inside its heap for reuse and only returns the top of the heap, so the free pages
between live allocations stay resident: a 30-minute soak with a level live heap
still saw RSS climb about 1.5 MiB every 10 minutes. ``malloc_trim(0)`` returns those
pages (up to 3 MiB a call there, in under a millisecond); with a trim every minute,
an hour of the soak is flat after its first 10 minutes (docs/performance.md#soak).

The call runs on the event loop: glibc locks each arena while it trims, so a
thread would only move the wait to the loop's next allocation. Its cost grows with
the heap's free fragments (``python -m bench trim-cost``, blocks of about 2 KiB, two in
three freed: 8-18 ms at 100 MiB, 120-320 ms at 2 GiB), so each trim is timed and the next waits at
least a thousand times as long: trimming never takes more than 0.1% of the loop's
time, however big the heap.

Process-wide, like the collector's thresholds (``pushwire.cli``): the command turns
it on; an application embedding pushwire decides for itself. Elsewhere than glibc
(musl, macOS, Windows) there is nothing to call and this does nothing.
"""

from __future__ import annotations

import asyncio
import ctypes
import functools
import logging
import mmap
import sys
import time
from collections.abc import Callable
from pathlib import Path

__all__ = ["MemoryTrimmer", "malloc_trim", "next_delay", "rss_bytes"]

log = logging.getLogger(__name__)

#: A trim may take at most this share of the loop's time (the next waits longer).
_MAX_SHARE = 0.001


def next_delay(interval: float, took: float) -> float:
    """Seconds until the next trim: the interval, or longer so trims stay under 0.1%."""
    return max(interval, took / _MAX_SHARE)


@functools.cache
def malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, or None where the C library has none."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        trim: Callable[[int], int] = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):  # musl has no malloc_trim
        return None
    trim.argtypes = [ctypes.c_size_t]  # type: ignore[attr-defined]
    trim.restype = ctypes.c_int  # type: ignore[attr-defined]
    return trim


def rss_bytes() -> int:
    """This process's resident set size from /proc (one small read), 0 if unreadable."""
    try:
        resident_pages = int(Path("/proc/self/statm").read_bytes().split()[1])
    except (OSError, IndexError, ValueError):
        return 0
    return resident_pages * mmap.PAGESIZE


class MemoryTrimmer:
    """Calls ``malloc_trim(0)`` every ``interval`` seconds, or less often if it is slow."""

    def __init__(self, interval: float, trim: Callable[[int], int] | None = None) -> None:
        self.interval = interval
        #: What trims: glibc's malloc_trim unless given (a test's stand-in of known cost).
        self._trim = trim if trim is not None else malloc_trim()
        #: Trims done, bytes of RSS they gave back, and the longest one (seconds).
        self.trims = 0
        self.returned_bytes = 0
        self.longest_seconds = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._stretched = False

    def start(self) -> bool:
        """Begin on the running loop; False (and nothing scheduled) where there is no trim."""
        if self.interval <= 0 or self._trim is None:
            return False
        self._timer = asyncio.get_running_loop().call_later(self.interval, self._run)
        return True

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def trim_now(self) -> float:
        """Trim once and return how long it took (seconds)."""
        if self._trim is None:
            return 0.0
        before = rss_bytes()
        started = time.perf_counter()
        self._trim(0)
        took = time.perf_counter() - started
        returned = max(0, before - rss_bytes())
        self.trims += 1
        self.returned_bytes += returned
        self.longest_seconds = max(self.longest_seconds, took)
        log.debug("malloc_trim returned %.1f MiB in %.2f ms", returned / 2**20, took * 1000)
        return took

    def _run(self) -> None:
        took = self.trim_now()
        delay = next_delay(self.interval, took)
        if (delay > self.interval) != self._stretched:
            # Said once when trims turn slow (the loop waited that long) and once when
            # they are quick again, not at every trim.
            self._stretched = not self._stretched
            log.log(
                logging.WARNING if self._stretched else logging.INFO,
                "malloc_trim took %.1f ms%s: trimming every %.0f s",
                took * 1000,
                ", the event loop waited (a large, fragmented heap)" if self._stretched else "",
                delay,
            )
        self._timer = asyncio.get_running_loop().call_later(delay, self._run)
