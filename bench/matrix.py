"""``python -m bench matrix``: every target through every scenario, then the docs/ files.

Runs are interleaved (all targets for one configuration, then the next configuration; with
``--repeat`` the target order alternates) so that a change in background load on the shared
machine hits every target alike instead of one of them.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import envinfo
from bench.report import RESULTS_JSON, render_all
from bench.scenarios import RunResult, RunSpec, run

#: (target, transport, publisher) measured for fan-out; labels follow ``RunSpec.label``.
FANOUT_CONFIGS = [
    ("pushwire", "ws", "ws"),
    ("pushwire", "ws", "http"),
    ("pushwire", "sse", "ws"),
    ("pushwire", "poll", "ws"),
    ("node-ws", "ws", "ws"),
    ("uws", "ws", "ws"),
]
#: (target, history) measured for short bursts, at BURST_SUBSCRIBERS: 30 publications
#: written at once on one WebSocket (the peers keep no history; pushwire with and without).
BURST_CONFIGS = [
    ("pushwire", "sqlite"),
    ("pushwire", "memory"),
    ("node-ws", "memory"),
    ("uws", "memory"),
]
BURST_SUBSCRIBERS = 10_000
LATENCY_CONFIGS = [
    ("pushwire", "ws", "ws"),
    ("pushwire", "sse", "ws"),
    ("pushwire", "poll", "ws"),
    ("node-ws", "ws", "ws"),
    ("uws", "ws", "ws"),
]
CONNS_CONFIGS = [
    ("pushwire", "ws"),
    ("pushwire", "sse"),
    ("pushwire", "poll"),
    ("node-ws", "ws"),
    ("uws", "ws"),
]
SUBSCRIBERS = (1000, 10_000)
#: A fan-out or latency run during which other processes used more CPU than this (in cores)
#: is repeated, up to ``RETRIES`` times; the machine is shared and other tenants come and go.
DISTURBED_CPU = 0.3
RETRIES = 2
#: Before each run, wait up to this long for other processes to quieten down.
QUIET_WAIT_S = 15.0


def wait_for_quiet(limit_s: float = QUIET_WAIT_S) -> float:
    """Wait (bounded) until other processes use under DISTURBED_CPU cores; return that load."""
    deadline = time.monotonic() + limit_s
    while True:
        busy = envinfo.background_load(1.0) * (os.cpu_count() or 1)
        if busy <= DISTURBED_CPU or time.monotonic() >= deadline:
            return busy


@dataclass(frozen=True)
class Plan:
    """Durations and sizes of one matrix run."""

    fanout_s: float
    latency_s: float
    connections: int
    max_connections: int


FULL = Plan(fanout_s=6.0, latency_s=10.0, connections=10_000, max_connections=19_000)
QUICK = Plan(fanout_s=3.0, latency_s=4.0, connections=10_000, max_connections=12_000)


def build_specs(plan: Plan, workers: int, repeat: int) -> list[RunSpec]:
    """Return every run of the matrix, in execution order."""
    specs: list[RunSpec] = []
    for rnd in range(repeat):
        for subs in SUBSCRIBERS:
            order = FANOUT_CONFIGS if rnd % 2 == 0 else FANOUT_CONFIGS[::-1]
            for target, transport, pub in order:
                specs.append(
                    RunSpec("fanout", target, transport, pub, subs, duration=plan.fanout_s,
                            workers=workers)
                )  # fmt: skip
    for rnd in range(repeat):
        burst_order = BURST_CONFIGS if rnd % 2 == 0 else BURST_CONFIGS[::-1]
        for target, history in burst_order:
            specs.append(
                RunSpec("burst", target, subscribers=BURST_SUBSCRIBERS, history=history,
                        workers=workers)
            )  # fmt: skip
    # Latency and accept runs are repeated too (the report takes their medians),
    # alternating the target order so that a drift in load hits every target alike.
    for rnd in range(repeat):
        for subs in SUBSCRIBERS:
            latency_order = LATENCY_CONFIGS if rnd % 2 == 0 else LATENCY_CONFIGS[::-1]
            for target, transport, pub in latency_order:
                specs.append(
                    RunSpec("latency", target, transport, pub, subs, duration=plan.latency_s,
                            rate=10.0, workers=workers)
                )  # fmt: skip
    for rnd in range(repeat):
        conns_order = CONNS_CONFIGS if rnd % 2 == 0 else CONNS_CONFIGS[::-1]
        for target, transport in conns_order:
            specs.append(
                RunSpec("conns", target, transport, connections=plan.connections,
                        max_connections=plan.max_connections, workers=workers)
            )  # fmt: skip
    return specs


def run_matrix(
    out: Path,
    quick: bool,
    workers: int,
    repeat: int,
    only: list[str] | None,
    merge: bool = False,
    scenarios: list[str] | None = None,
) -> int:
    """Run the matrix, write bench-results.json/.md and the plot; return an exit status.

    With ``merge`` the runs are added to those already in bench-results.json (e.g. to re-measure
    configurations that were disturbed); the tables then pick the best run of each cell.
    """
    plan = QUICK if quick else FULL
    specs = build_specs(plan, workers, max(1, repeat))
    if only:
        specs = [s for s in specs if s.label in only or s.target in only]
    if scenarios:
        specs = [s for s in specs if s.scenario in scenarios]
    out.mkdir(parents=True, exist_ok=True)
    doc: dict[str, Any] = {
        "generated": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "quick": quick,
        "plan": plan.__dict__,
        "env": envinfo.collect(),
        "background_load_before": envinfo.background_load(),
        "runs": [],
    }
    previous: list[dict[str, Any]] = []
    path = out / RESULTS_JSON
    if merge and path.exists():
        old = json.loads(path.read_text())
        previous = old["runs"]
        doc["merged_from"] = [*old.get("merged_from", []), old["generated"]]
        doc["wall_s_before"] = old.get("wall_s", 0) + old.get("wall_s_before", 0)
    t0 = time.monotonic()
    results: list[RunResult] = []
    for i, spec in enumerate(specs, 1):
        elapsed = time.monotonic() - t0
        print(
            f"bench: [{i}/{len(specs)} {elapsed:5.0f}s] {spec.scenario} {spec.label} "
            f"x{spec.connections if spec.scenario == 'conns' else spec.subscribers}",
            flush=True,
        )
        for attempt in range(RETRIES + 1):
            wait_for_quiet()
            result = run(spec)
            results.append(result)
            for err in result.errors:
                print(f"bench:    ! {err[:300]}", flush=True)
            foreign = result.metrics.get("foreign_cpu") or 0.0
            if foreign <= DISTURBED_CPU or attempt == RETRIES:
                break
            print(f"bench:    other processes used {foreign:.2f} cores; again", flush=True)
        doc["runs"] = previous + [r.to_json() for r in results]
        doc["wall_s"] = round(time.monotonic() - t0, 1)
        # Written after every run so an interrupted matrix still leaves its data behind.
        path.write_text(json.dumps(doc, indent=1) + "\n")
    doc["background_load_after"] = envinfo.background_load()
    path.write_text(json.dumps(doc, indent=1) + "\n")
    render_all(out)
    print(f"bench: done in {time.monotonic() - t0:.0f}s; wrote {out}/bench-results.*", flush=True)
    return 0
