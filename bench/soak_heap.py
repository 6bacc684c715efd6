"""``pushwire serve`` on jemalloc, reporting its live heap: tells a leak from fragmentation.

RSS counts every page the allocators hold, free or not. When a soak's RSS creeps up, it
is either live memory growing (a leak, or state that is not bounded) or memory freed but
kept: pages pinned by a few long-lived objects among many freed ones (fragmentation), or
the high-water mark of a burst. From outside the process the two look the same.

``python -m bench soak --heap`` starts the server through this module with jemalloc
preloaded (``LD_PRELOAD``) and ``PYTHONMALLOC=malloc``, so that every Python object, and
every C library's allocation, goes through one allocator that can say what is live.
A thread writes jemalloc's own account every second to the file named by
``PUSHWIRE_SOAK_HEAP_FILE``: ``allocated`` (bytes in live allocations: what a leak
grows), ``active`` (pages holding them: allocated plus the holes between), ``resident``
(what jemalloc holds in RAM, metadata included), and ``sqlite`` (what SQLite itself has
allocated, its page caches first: part of ``allocated``, bounded by ``cache_size`` per
connection). The sampler puts these beside RSS.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

__all__ = ["HEAP_FILE_ENV", "find_jemalloc", "heap_stats", "main", "sqlite_bytes"]

HEAP_FILE_ENV = "PUSHWIRE_SOAK_HEAP_FILE"
_EVERY_SECONDS = 1.0
#: The thread's bound: a day of reports, far beyond any soak.
_MAX_REPORTS = 86_400
_STATS = ("allocated", "active", "resident")


def find_jemalloc() -> str | None:
    """The jemalloc shared library's name for ``LD_PRELOAD``, or None if not installed."""
    return ctypes.util.find_library("jemalloc")


@functools.cache
def _mallctl() -> Any:
    """jemalloc's ``mallctl``, looked up once, or None if this process is not on jemalloc.

    Once: every ``ctypes.CDLL`` makes a class of its own, in a reference cycle, and the
    server's collector runs so rarely (``cli._tune_garbage_collector``) that one a
    second, made by this reporter, was most of the live heap's growth in a soak.
    """
    try:
        return ctypes.CDLL(None).mallctl
    except (AttributeError, OSError):
        return None


@functools.cache
def _sqlite_memory_used() -> Any:
    """SQLite's ``sqlite3_memory_used``, looked up once (see ``_mallctl``), or None."""
    try:
        used = ctypes.CDLL(ctypes.util.find_library("sqlite3") or "libsqlite3.so.0")
        used.sqlite3_memory_used.restype = ctypes.c_int64
        return used.sqlite3_memory_used
    except (AttributeError, OSError):
        return None


def heap_stats() -> dict[str, int] | None:
    """jemalloc's ``stats.*`` counters in bytes, or None if this process is not on jemalloc."""
    mallctl = _mallctl()
    if mallctl is None:
        return None
    size_t = ctypes.c_size_t
    # The counters are a snapshot refreshed by writing "epoch".
    epoch = ctypes.c_uint64(1)
    mallctl(b"epoch", None, None, ctypes.byref(epoch), size_t(ctypes.sizeof(epoch)))
    out: dict[str, int] = {}
    for name in _STATS:
        value = size_t(0)
        length = size_t(ctypes.sizeof(value))
        if mallctl(f"stats.{name}".encode(), ctypes.byref(value), ctypes.byref(length), None, 0):
            return None
        out[name] = value.value
    return out


def sqlite_bytes() -> int | None:
    """Bytes SQLite has allocated in this process (``sqlite3_memory_used``), if it says."""
    used = _sqlite_memory_used()
    return None if used is None else int(used())


def _report_forever(path: Path) -> None:
    partial = path.with_suffix(".partial")
    for _ in range(_MAX_REPORTS):
        stats: dict[str, int] | None = heap_stats()
        if stats is not None:
            sqlite = sqlite_bytes()
            if sqlite is not None:
                stats["sqlite"] = sqlite
            partial.write_text(json.dumps({"time": time.time(), **stats}))
            partial.replace(path)  # the sampler never reads half a line
        time.sleep(_EVERY_SECONDS)


def main() -> int:
    if heap_stats() is None:
        print("bench.soak_heap: jemalloc is not loaded (LD_PRELOAD)", file=sys.stderr)
        return 2
    threading.Thread(
        target=_report_forever, args=(Path(os.environ[HEAP_FILE_ENV]),), daemon=True
    ).start()
    from pushwire.cli import main as pushwire_main

    result: int = pushwire_main()
    return result


if __name__ == "__main__":
    sys.exit(main())
