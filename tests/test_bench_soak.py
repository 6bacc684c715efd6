"""``python -m bench soak`` works end to end: a short run samples, summarises and stops itself.

The soak's figures are measured, never asserted (they depend on the machine); what is
checked is that the command runs its server and clients, writes its samples and summary,
and leaves nothing behind. The half-hour run is in docs/performance.md#soak.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench.soak import _lag_since, _medians_by_window, _second_half, _slope_per_10_min

ROOT = Path(__file__).resolve().parent.parent


def _short_soak(out: Path, *args: str) -> list[dict[str, Any]]:
    """Run ``python -m bench soak`` briefly with ``args``; its JSONL lines."""
    done = subprocess.run(
        [sys.executable, "-m", "bench", "soak", "--interval", "1", "--cool-down", "2",
         "--out", str(out), *args],
        cwd=ROOT, capture_output=True, text=True, timeout=90, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return [json.loads(line) for line in out.read_text().splitlines()]


def test_a_short_soak_writes_samples_and_a_summary_and_stops(tmp_path: Path) -> None:
    png = tmp_path / "soak.png"
    # The plot needs matplotlib, which is in the bench extra, not the test one.
    plotting = importlib.util.find_spec("matplotlib") is not None
    plot = ["--plot", str(png)] if plotting else ["--no-plot"]
    lines = _short_soak(tmp_path / "soak.jsonl", "--minutes", "0.12", "--actors", "30", *plot)

    assert lines[0]["type"] == "run"
    samples = [x for x in lines if x["type"] == "sample"]
    assert len(samples) >= 5
    assert all(s["rss_mib"] > 0 and s["health_status"] == 200 for s in samples)
    assert max(s["tcp_connections"] for s in samples) > 0  # the clients did connect
    summary = lines[-1]
    assert summary["type"] == "summary"
    assert summary["server_exit"] is None  # alive until the soak stopped it
    assert summary["server_log_error_lines"] == 0, summary["server_log_first_errors"]
    assert summary["load"]["stats"]["publish.api.200"] > 0
    if plotting:
        assert png.stat().st_size > 10_000


def test_the_worst_lag_is_the_highest_bucket_that_got_an_observation() -> None:
    name = "pushwire_event_loop_lag_seconds"
    before = {f"{name}_count": 2, f"{name}_sum": 0.002,
              f'{name}_bucket{{le="0.001"}}': 1, f'{name}_bucket{{le="0.25"}}': 2}  # fmt: skip
    now = {f"{name}_count": 5, f"{name}_sum": 0.302,
           f'{name}_bucket{{le="0.001"}}': 3, f'{name}_bucket{{le="0.25"}}': 5}  # fmt: skip

    assert _lag_since(before, now) == (0.25, 100.0)
    assert _lag_since(now, now) == (None, None)


def test_the_slope_is_in_mib_per_ten_minutes() -> None:
    assert _slope_per_10_min([(0, 50.0), (300, 51.0), (600, 52.0)]) == 2.0
    assert _slope_per_10_min([(0, 50.0), (600, 50.0), (1200, 50.0)]) == 0.0


def test_a_saw_tooth_on_a_level_shows_as_level_window_medians() -> None:
    # Up 1 MiB a minute for five minutes, then back: the level does not move.
    tooth = [(t * 60.0, 50.0 + t % 5) for t in range(30)]
    assert _medians_by_window(tooth, 300) == [52.0] * 6
    rising = [(t * 60.0, 50.0 + t) for t in range(10)]
    assert _medians_by_window(rising, 300) == [52.0, 57.0]
    assert _medians_by_window([], 300) == []


def test_the_second_half_is_the_later_half_of_the_time_spanned() -> None:
    points = [(180.0, 1.0), (600.0, 2.0), (1000.0, 3.0), (1800.0, 4.0)]
    assert _second_half(points) == [(1000.0, 3.0), (1800.0, 4.0)]
    assert _slope_per_10_min(_second_half([(t * 60.0, 50.0) for t in range(20)])) == 0.0


def test_with_heap_the_server_runs_on_jemalloc_and_its_live_heap_is_sampled(
    tmp_path: Path,
) -> None:
    from bench.soak_heap import find_jemalloc

    if find_jemalloc() is None:
        if os.environ.get("PUSHWIRE_REQUIRE_SERVICES") == "1":
            pytest.fail("libjemalloc is not installed (Debian: libjemalloc2)")
        pytest.skip("libjemalloc is not installed")
    lines = _short_soak(
        tmp_path / "soak.jsonl", "--heap", "--minutes", "0.1", "--actors", "20", "--no-plot"
    )

    assert lines[0]["allocator"] == "jemalloc"
    samples = [x for x in lines if x["type"] == "sample"]
    heap = [s for s in samples if "heap_allocated_mib" in s]
    assert len(heap) >= len(samples) - 2  # the first sample may come before the first report
    # Live bytes sit inside the pages holding them, which sit inside the process's RSS.
    assert all(0 < s["heap_allocated_mib"] <= s["heap_active_mib"] < s["rss_mib"] for s in heap)
    assert lines[-1]["heap_allocated_mib_steady_min_max"] is not None
    assert all(0 <= s.get("heap_sqlite_mib", 0) <= s["heap_allocated_mib"] for s in heap)


def test_without_heap_nothing_about_the_heap_is_sampled(tmp_path: Path) -> None:
    from bench.soak import _heap

    assert _heap(None) == {}
    assert _heap(tmp_path / "not-written-yet.json") == {}


def test_behaviours_and_publishers_narrow_the_load_to_the_named_parts(tmp_path: Path) -> None:
    lines = _short_soak(
        tmp_path / "soak.jsonl", "--minutes", "0.1", "--actors", "10", "--no-plot",
        "--behaviours", "poller,sse_reader", "--publishers", "ws",
    )  # fmt: skip

    assert lines[0]["behaviours"] == ["poller", "sse_reader"]
    assert lines[0]["publishers"] == ["ws"]
    stats = lines[-1]["load"]["stats"]
    started = {k.split(".")[0] for k in stats if k.endswith(".started")}
    assert started
    assert started <= {"poller", "sse_reader"}
    assert stats["publish.ws.ok"] > 0
    assert not [k for k in stats if k.startswith(("publish.api", "publish.firehose"))]


def test_an_unknown_behaviour_is_refused_before_anything_starts() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench", "soak", "--behaviours", "ws_reader,teleport"],
        cwd=ROOT, capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert "unknown: teleport" in done.stderr


def test_the_heap_reporter_leaves_nothing_for_the_collector() -> None:
    """It runs once a second inside a server whose collector seldom runs: it must add
    nothing to the heap it measures (a ctypes library opened per report did)."""
    import gc

    from bench.soak_heap import heap_stats, sqlite_bytes

    heap_stats()
    sqlite_bytes()
    gc.collect()
    gc.disable()
    try:
        before = len(gc.get_objects())
        for _ in range(100):
            heap_stats()
            sqlite_bytes()
        grown = len(gc.get_objects()) - before
    finally:
        gc.enable()
    assert grown < 10
