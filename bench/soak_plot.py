"""The soak's picture: server RSS over the run, with open files and loop lag beneath it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["plot"]


def plot(jsonl: Path, png: Path) -> None:
    """Draw ``png`` from the samples in ``jsonl`` (written by ``bench.soak``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lines = [json.loads(line) for line in jsonl.read_text().splitlines() if line.strip()]
    run: dict[str, Any] = next((x for x in lines if x["type"] == "run"), {})
    samples = [x for x in lines if x["type"] == "sample"]
    minutes = [s["t"] / 60 for s in samples]
    fig, (ax_rss, ax_fds, ax_lag) = plt.subplots(
        3, 1, figsize=(9, 7), sharex=True, gridspec_kw={"height_ratios": [3, 1.3, 1.3]}
    )
    ax_rss.plot(minutes, [s["rss_mib"] for s in samples], color="tab:blue", label="RSS")
    if any("heap_allocated_mib" in s for s in samples):  # --heap: the server on jemalloc
        for key, label, style in (
            ("heap_active_mib", "pages holding the heap (jemalloc active)", ":"),
            ("heap_allocated_mib", "live heap (jemalloc allocated)", "-"),
            ("heap_sqlite_mib", "of which SQLite (page caches)", "--"),
        ):
            if not any(key in s for s in samples):
                continue
            ax_rss.plot(
                minutes,
                [s.get(key, float("nan")) for s in samples],
                color="tab:brown",
                ls=style,
                lw=1,
                label=label,
            )
        ax_rss.legend(fontsize=7, loc="lower right")
    ax_rss.set_ylabel("server RSS (MiB)")
    top = max((s["rss_mib"] for s in samples), default=1)
    ax_rss.set_ylim(0, top * 1.15)
    warm_up = run.get("warm_up_seconds", 0) / 60
    load_end = run.get("seconds", 0) / 60
    for ax in (ax_rss, ax_fds, ax_lag):
        ax.axvspan(0, warm_up, color="0.92", lw=0)
        ax.axvline(load_end, color="0.5", lw=0.8, ls="--")
        ax.grid(alpha=0.3)
    ax_rss.text(warm_up / 2, top * 1.05, "warm-up", ha="center", fontsize=8, color="0.4")
    ax_rss.text(load_end, top * 1.05, " load ends", fontsize=8, color="0.4")
    ax_conn = ax_rss.twinx()
    ax_conn.plot(
        minutes, [s["tcp_connections"] for s in samples], color="tab:green", lw=0.7, alpha=0.6
    )
    ax_conn.set_ylabel("TCP connections", color="tab:green")
    ax_fds.plot(minutes, [s["fds"] for s in samples], color="tab:orange")
    ax_fds.set_ylabel("open files")
    ax_lag.plot(
        minutes,
        [s["health_ms"] if s["health_ms"] is not None else float("nan") for s in samples],
        color="tab:purple",
        lw=0.8,
        label="/health round trip (ms)",
    )
    ax_lag.plot(
        minutes,
        [s["lag_mean_ms"] if s["lag_mean_ms"] is not None else float("nan") for s in samples],
        color="tab:red",
        lw=0.8,
        label="loop lag, mean of the interval (ms)",
    )
    ax_lag.set_ylabel("ms")
    ax_lag.set_xlabel("minutes")
    ax_lag.legend(fontsize=7, loc="upper right")
    history = run.get("history", "?")
    allocator = ", on jemalloc" if run.get("allocator") == "jemalloc" else ""
    ax_rss.set_title(
        f"pushwire serve ({history} history{allocator}) under the soak mix, "
        f"{run.get('actors', '?')} clients churning, seed {run.get('seed', '?')}",
        fontsize=10,
    )
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=110)
    plt.close(fig)
