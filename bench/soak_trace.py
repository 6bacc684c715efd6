"""``pushwire serve`` with tracemalloc on, for hunting what a soak's RSS growth is made of.

``python -m bench soak --trace DIR`` starts the server through this module instead of
``python -m pushwire``. On SIGUSR1 the server writes, into the directory named by
``PUSHWIRE_SOAK_TRACE_DIR``, the allocation sites that grew most since the first signal
(tracemalloc, 8 frames) and the object counts by type that grew most (``gc``), as
``trace-N.txt``. tracemalloc makes the server slower and bigger; use it to find a leak,
not to measure. With ``PUSHWIRE_SOAK_TRACEMALLOC=0`` tracemalloc stays off and SIGUSR1
instead counts the cyclic garbage a full collection frees (by type), asks glibc to hand
free memory back (``malloc_trim(0)``) and writes RSS before and after: memory that comes
back was free (fragmentation, not a leak); memory that does not is held by live
allocations.
"""

from __future__ import annotations

import collections
import ctypes
import functools
import gc
import os
import signal
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from types import FrameType

from pushwire.server.memory_trim import malloc_trim, rss_bytes

_TOP = 25
_state: dict[str, object] = {"n": 0}


def _dump(signum: int, frame: FrameType | None) -> None:
    del signum, frame
    out = Path(os.environ["PUSHWIRE_SOAK_TRACE_DIR"])
    n = int(str(_state["n"]))
    _state["n"] = n + 1
    gc.collect()
    snapshot = tracemalloc.take_snapshot().filter_traces(
        (tracemalloc.Filter(False, tracemalloc.__file__),)
    )
    counts = collections.Counter(type(o).__qualname__ for o in gc.get_objects())
    lines = [f"tracemalloc traced {tracemalloc.get_traced_memory()[0] / 2**20:.1f} MiB"]
    first = _state.get("first")
    first_counts = _state.get("first_counts")
    if isinstance(first, tracemalloc.Snapshot) and isinstance(first_counts, collections.Counter):
        lines.append("\n== allocation sites that grew most since trace-0 ==")
        for diff in snapshot.compare_to(first, "traceback")[:_TOP]:
            lines.append(f"{diff.size_diff / 1024:+.1f} KiB, {diff.count_diff:+d} blocks")
            lines.extend("    " + x for x in diff.traceback.format(most_recent_first=True))
        lines.append("\n== object types that grew most since trace-0 ==")
        grown = sorted(((counts[k] - first_counts.get(k, 0), k) for k in counts), reverse=True)
        lines.extend(f"{d:+d} {k} (now {counts[k]})" for d, k in grown[:_TOP])
    else:
        _state["first"] = snapshot
        _state["first_counts"] = counts
        lines.append("\n== biggest allocation sites ==")
        for stat in snapshot.statistics("lineno")[:_TOP]:
            lines.append(str(stat))
    (out / f"trace-{n}.txt").write_text("\n".join(lines) + "\n")


class _Mallinfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd",
            "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost",
        )
    ]  # fmt: skip


@functools.cache
def _mallinfo2() -> Callable[[], _Mallinfo2]:
    """Looked up once: each ctypes lookup makes objects only the collector frees."""
    mallinfo2: Callable[[], _Mallinfo2] = ctypes.CDLL(None).mallinfo2
    mallinfo2.restype = _Mallinfo2  # type: ignore[attr-defined]
    return mallinfo2


def _glibc_heap() -> str:
    """glibc's own account: bytes in use and free in its heaps, and in mmapped blocks."""
    info = _mallinfo2()()
    mib = 2**20
    return (
        f"glibc: heaps {info.arena / mib:.1f} MiB ({info.uordblks / mib:.1f} in use, "
        f"{info.fordblks / mib:.1f} free), mmapped blocks {info.hblks} "
        f"({info.hblkhd / mib:.1f} MiB)"
    )


def _trim(signum: int, frame: FrameType | None) -> None:
    del signum, frame
    out = Path(os.environ["PUSHWIRE_SOAK_TRACE_DIR"])
    n = int(str(_state["n"]))
    _state["n"] = n + 1
    before = rss_bytes()
    # What only the collector could free, by type: kept aside (DEBUG_SAVEALL) to be
    # counted, then let go. ``pushwire serve``'s thresholds make full collections rare.
    gc.set_debug(gc.DEBUG_SAVEALL)
    gc.collect()
    gc.set_debug(0)
    garbage = collections.Counter(type(o).__qualname__ for o in gc.garbage)
    modules = collections.Counter(
        getattr(type(o), "__module__", "?") for o in gc.garbage if not isinstance(o, dict)
    )
    gc.garbage.clear()
    gc.collect()
    after_gc = rss_bytes()
    glibc_before = _glibc_heap()
    started = time.perf_counter()
    trim = malloc_trim()
    if trim is not None:
        trim(0)
    took_ms = (time.perf_counter() - started) * 1000
    after = rss_bytes()
    counts = collections.Counter(type(o).__qualname__ for o in gc.get_objects())
    path = out / f"trim-{n}.txt"
    path.write_text(
        f"RSS {before / 2**20:.1f} MiB, after gc.collect() {after_gc / 2**20:.1f} MiB, "
        f"after malloc_trim(0) {after / 2**20:.1f} MiB (the call took {took_ms:.2f} ms)\n"
        f"{glibc_before} before the trim\n"
        f"blocks allocated (sys.getallocatedblocks) {sys.getallocatedblocks()}\n"
        f"cyclic garbage the collection freed {sum(garbage.values())}: "
        + ", ".join(f"{k} {v}" for k, v in garbage.most_common(_TOP))
        + "\nby module: "
        + ", ".join(f"{k} {v}" for k, v in modules.most_common(_TOP))
        + "\n"
        f"gc-tracked objects {sum(counts.values())}: "
        + ", ".join(f"{k} {v}" for k, v in counts.most_common(_TOP))
        + "\n\n"
    )
    # pymalloc's own account (arenas allocated and in use, blocks), written to stderr by C.
    sys.stderr.flush()
    saved = os.dup(2)
    with path.open("a") as f:
        os.dup2(f.fileno(), 2)
        try:
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def main() -> int:
    if os.environ.get("PUSHWIRE_SOAK_TRACEMALLOC", "1") == "0":
        signal.signal(signal.SIGUSR1, _trim)
    else:
        tracemalloc.start(8)
        signal.signal(signal.SIGUSR1, _dump)
    from pushwire.cli import main as pushwire_main

    result: int = pushwire_main()
    return result


if __name__ == "__main__":
    sys.exit(main())
