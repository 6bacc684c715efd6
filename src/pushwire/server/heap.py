"""Give freed heap memory back to the OS now and then (glibc's ``malloc_trim``).

A server whose connections come and go frees about as much as it allocates, but glibc
keeps what was freed in its heap for reuse, and the holes left between live chunks are
rarely whole enough to reuse for the next, differently sized, buffers. Measured by the soak
(``python -m bench soak``, docs/performance.md#soak): under 30 minutes of churning clients,
RSS climbed about 5 MiB per 10 minutes while Python's own objects stayed flat (tracemalloc,
pymalloc's arena count) and ``malloc_trim(0)`` gave most of the growth back. Since glibc
2.8 it also returns free pages in the middle of the heap (``madvise``), not only at its top.

Every ``interval_seconds`` (60 s) the trimmer calls it on the event loop; it takes well
under a millisecond on a heap of this size (the duration of the last call is kept). Where
the C library is not glibc (musl, macOS) there is nothing to call and it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import time
from collections.abc import Callable

from pushwire.transports.base import Clock, LoopClock, Timer

__all__ = ["HeapTrimmer", "glibc_malloc_trim"]

logger = logging.getLogger(__name__)

_INTERVAL_SECONDS = 60.0

Trim = Callable[[int], int]


def glibc_malloc_trim() -> Trim | None:
    """glibc's ``malloc_trim``, or None where the C library has none."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    result: Trim = trim
    return result


class HeapTrimmer:
    """A timer that asks the allocator to hand free memory back, every ``interval_seconds``."""

    __slots__ = ("_clock", "_handle", "_trim", "interval_seconds", "last_seconds", "runs")

    def __init__(
        self,
        interval_seconds: float = _INTERVAL_SECONDS,
        *,
        clock: Clock | None = None,
        trim: Trim | None = None,
    ) -> None:
        """
        Args:
            trim: what to call with 0 (default: glibc's ``malloc_trim``, if there is one).
        """
        self.interval_seconds = interval_seconds
        #: How long the last trim took (seconds), and how many have run.
        self.last_seconds = 0.0
        self.runs = 0
        self._clock = clock or LoopClock()
        self._trim = trim if trim is not None else glibc_malloc_trim()
        self._handle: Timer | None = None

    @property
    def available(self) -> bool:
        """True when there is a ``malloc_trim`` to call."""
        return self._trim is not None

    def start(self) -> None:
        if self._handle is None and self._trim is not None:
            self._handle = self._clock.call_later(self.interval_seconds, self._run)

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _run(self) -> None:
        assert self._trim is not None
        started = time.perf_counter()
        try:
            self._trim(0)
        except Exception:  # never let housekeeping take the server down
            logger.exception("malloc_trim failed; not trying again")
            self._handle = None
            return
        self.last_seconds = time.perf_counter() - started
        self.runs += 1
        self._handle = self._clock.call_later(self.interval_seconds, self._run)
