"""``python -m bench trim-cost``: the trims' times on fragmented heaps, from a real glibc."""

from __future__ import annotations

import platform

import pytest

from bench.trim_cost import measure_trims


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's")
def test_a_fragmented_heap_is_given_back_and_timed() -> None:
    found = measure_trims([20])

    (row,) = found["rows"]
    assert row["heap_mib"] == 20
    assert row["returned_mib"] >= 2
    assert row["first_trim_ms"] > 0
    assert row["second_trim_ms"] > 0
