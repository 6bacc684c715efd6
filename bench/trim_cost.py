"""How long glibc's ``malloc_trim(0)`` takes as the heap's free fragments grow.

``python -m bench trim-cost`` builds, in this process, heaps of 2 KiB blocks (glibc's,
past pymalloc's 512 bytes) with two in three freed between the kept ones, and times
two trims through ``pushwire serve``'s own trimmer (the first gives the pages back,
the second finds them given back already). The figures behind the trimmer's back-off
(``pushwire/server/memory_trim.py``): a trim that takes longer than 0.1% of the
interval puts the next off. A worst case on purpose: a server's heap mixes sizes and
frees less evenly.
"""

from __future__ import annotations

import random
from typing import Any

from pushwire.server.memory_trim import MemoryTrimmer, malloc_trim, rss_bytes

_SIZES = (600, 1500, 3000, 5000)


def measure_trims(heaps_mib: list[int], seed: int = 1) -> dict[str, Any]:
    """One row per heap size: RSS with the fragments in, and the two trims' times."""
    if malloc_trim() is None:
        return {"error": "no malloc_trim here (glibc only)", "rows": []}
    choose = random.Random(seed).choice
    rows = []
    for mib in heaps_mib:
        kept: list[bytearray] = []
        freed: list[bytearray] = []
        for i in range(mib * 512):  # blocks of 2 KiB on average
            (kept if i % 3 == 0 else freed).append(bytearray(choose(_SIZES)))
        freed.clear()
        trimmer = MemoryTrimmer(interval=60)
        rss_mib = rss_bytes() / 2**20
        first = trimmer.trim_now()
        second = trimmer.trim_now()
        rows.append(
            {
                "heap_mib": mib,
                "rss_before_mib": round(rss_mib, 1),
                "returned_mib": round(trimmer.returned_bytes / 2**20, 1),
                "first_trim_ms": round(first * 1000, 2),
                "second_trim_ms": round(second * 1000, 2),
            }
        )
        kept.clear()
    return {"rows": rows}
