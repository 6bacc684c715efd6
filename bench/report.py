"""Turn bench-results.json into the Markdown tables, the pass/fail list and the fan-out plot.

Kept apart from running so the documents can be re-rendered (``python -m bench report``)
without re-measuring. When docs/performance.md has the marker comments below, the generated
section between them is replaced too.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

RESULTS_JSON = "bench-results.json"
RESULTS_MD = "bench-results.md"
FANOUT_PNG = "bench-fanout.png"
PERF_MD = "performance.md"
BEGIN = "<!-- bench:results:begin -->"
END = "<!-- bench:results:end -->"

PW_WS = "pushwire/ws (ws pub)"
PW_WS_HTTP = "pushwire/ws (http pub)"
PW_SSE = "pushwire/sse (ws pub)"
PW_POLL = "pushwire/poll (ws pub)"
NODE = "node-ws"
UWS = "uws"

Run = dict[str, Any]


@dataclass
class Summary:
    """The run chosen for each (scenario, label, size) cell of the tables."""

    fanout: dict[tuple[str, int], Run]
    latency: dict[tuple[str, int], Run]
    conns: dict[str, Run]
    labels_fanout: list[str]
    labels_latency: list[str]
    labels_conns: list[str]
    burst: dict[str, Run] = field(default_factory=dict)
    labels_burst: list[str] = field(default_factory=list)


def _metric(run: Run | None, key: str) -> Any:
    return None if run is None else run["metrics"].get(key)


def _median(runs: list[Run], key: str) -> Run:
    """The run whose ``key`` is the median (the upper one of an even count); failed runs last."""
    ranked = sorted(
        runs, key=lambda run: (bool(run["errors"]), float(_metric(run, key) or float("inf")))
    )
    usable = [run for run in ranked if not run["errors"]] or ranked
    return usable[len(usable) // 2]


def summarize(runs: list[Run]) -> Summary:
    """Pick one run per cell, by the same rule for every target.

    Fan-out: the fastest repeat (background load only ever slows a run down).
    Latency and accepting connections: the median repeat by p99 and by accept time,
    since one run of either swings widely when both cores are saturated. Bursts: the
    median repeat by CPU per 1M deliveries.
    """
    fanout: dict[tuple[str, int], Run] = {}
    latency_runs: dict[tuple[str, int], list[Run]] = {}
    conns_runs: dict[str, list[Run]] = {}
    burst_runs: dict[str, list[Run]] = {}
    order: dict[str, list[str]] = {"fanout": [], "burst": [], "latency": [], "conns": []}
    for run in runs:
        spec, label = run["spec"], run["label"]
        scenario = spec["scenario"]
        if label not in order[scenario]:
            order[scenario].append(label)
        if scenario == "fanout":
            key = (label, spec["subscribers"])
            old = fanout.get(key)
            rate = _metric(run, "deliveries_per_s") or 0
            if old is None or rate > (_metric(old, "deliveries_per_s") or 0):
                fanout[key] = run
        elif scenario == "latency":
            latency_runs.setdefault((label, spec["subscribers"]), []).append(run)
        elif scenario == "burst":
            burst_runs.setdefault(label, []).append(run)
        else:
            conns_runs.setdefault(label, []).append(run)
    latency = {key: _median(runs, "p99_ms") for key, runs in latency_runs.items()}
    conns = {label: _median(runs, "accept_s") for label, runs in conns_runs.items()}
    burst = {label: _median(runs, "cpu_s_per_1m") for label, runs in burst_runs.items()}
    return Summary(
        fanout,
        latency,
        conns,
        order["fanout"],
        order["latency"],
        order["conns"],
        burst,
        order["burst"],
    )


# -- formatting -------------------------------------------------------------------------------
def _num(value: Any, digits: int = 0, suffix: str = "") -> str:
    if value is None:
        return "n/a"
    if isinstance(value, int | float):
        return f"{value:,.{digits}f}{suffix}"
    return str(value)


def _ratio(a: Any, b: Any) -> float | None:
    if not a or not b:
        return None
    return float(a) / float(b)


def _flag(run: Run | None) -> str:
    if run is None:
        return " (not run)"
    return " ⚠" if run["errors"] else ""


#: Load-generator CPU use (cores) from which a run's rate is marked as set by the load generator.
LOADGEN_BOUND = 0.85


def _rate(run: Run | None) -> str:
    """deliveries/s, marked ‡ when the load generator's core was (nearly) saturated."""
    rate = _num(_metric(run, "deliveries_per_s"))
    if run is not None and (_metric(run, "loadgen_cpu_util") or 0) >= LOADGEN_BOUND:
        rate += " ‡"
    return rate + _flag(run)


def _capacity(run: Run | None) -> str:
    cpu = _metric(run, "cpu_s_per_1m")
    return _num(1e6 / cpu if cpu else None)


def fanout_table(s: Summary) -> str:
    """Deliveries/s, CPU per 1M deliveries and loss, at 1k and 10k subscribers."""
    lines = [
        "| target | deliveries/s 1k | deliveries/s 10k | x node-ws 1k | x node-ws 10k "
        "| server CPU s / 1M 1k | server CPU s / 1M 10k | one-core capacity 1k / 10k "
        "| lost 1k / 10k |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for label in s.labels_fanout:
        r1, r10 = s.fanout.get((label, 1000)), s.fanout.get((label, 10_000))
        n1, n10 = s.fanout.get((NODE, 1000)), s.fanout.get((NODE, 10_000))
        x1 = _ratio(_metric(r1, "deliveries_per_s"), _metric(n1, "deliveries_per_s"))
        x10 = _ratio(_metric(r10, "deliveries_per_s"), _metric(n10, "deliveries_per_s"))
        lines.append(
            f"| {label} | {_rate(r1)} | {_rate(r10)} "
            f"| {_num(x1, 2, 'x')} | {_num(x10, 2, 'x')} "
            f"| {_num(_metric(r1, 'cpu_s_per_1m'), 2)} | {_num(_metric(r10, 'cpu_s_per_1m'), 2)} "
            f"| {_capacity(r1)} / {_capacity(r10)} "
            f"| {_num(_metric(r1, 'lost'))} / {_num(_metric(r10, 'lost'))} |"
        )
    lines += [
        "",
        f"‡ the load generator used ≥ {LOADGEN_BOUND} of its core: it, not the server, set the "
        "pace, so the rate is a lower bound for that target (and its ratio to node-ws too). "
        "*One-core capacity* is derived, not measured: 1,000,000 ÷ server CPU s per 1M "
        "deliveries, the rate the server would reach with a whole core and a faster load "
        "generator, if its cost per delivery stayed the same.",
    ]
    return "\n".join(lines)


def burst_table(s: Summary) -> str:
    """CPU per 1M deliveries of short bursts (30 publications at once), with and without history."""
    lines = [
        "| target | subscribers | publications per burst x bursts | server CPU s / 1M "
        "| x uws | ms per burst | lost |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    uws = s.burst.get(UWS)
    for label in s.labels_burst:
        run = s.burst[label]
        spec = run["spec"]
        cpu = _metric(run, "cpu_s_per_1m")
        lines.append(
            f"| {label}{_flag(run)} | {_num(spec['subscribers'])} "
            f"| {spec['burst']} x {spec['bursts']} | {_num(cpu, 3)} "
            f"| {_num(_ratio(cpu, _metric(uws, 'cpu_s_per_1m')), 2, 'x')} "
            f"| {_num(_metric(run, 'burst_ms'), 1)} | {_num(_metric(run, 'lost'))} |"
        )
    lines += [
        "",
        "Each burst is written in one go on one WebSocket and delivered to every subscriber "
        "before the next; CPU is the server's over the whole series. `sqlite`: pushwire with "
        "its default history store (the peers keep no history).",
    ]
    return "\n".join(lines)


def fanout_health_table(s: Summary) -> str:
    """Who was busy during each fan-out run: shows whether the server was the bottleneck."""
    lines = [
        "| target | subs | server CPU util | server run-queue wait | load-gen CPU util "
        "| other processes | window (msgs) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for label in s.labels_fanout:
        for subs in (1000, 10_000):
            r = s.fanout.get((label, subs))
            if r is None:
                continue
            lines.append(
                f"| {label} | {subs:,} | {_num(_metric(r, 'server_cpu_util'), 2)} "
                f"| {_num(_metric(r, 'server_runq_wait'), 2)} "
                f"| {_num(_metric(r, 'loadgen_cpu_util'), 2)} "
                f"| {_num(_metric(r, 'foreign_cpu'), 2)} | {_num(_metric(r, 'window'))} |"
            )
    return "\n".join(lines)


def latency_table(s: Summary) -> str:
    """p50/p99/max publish-to-receive latency at 10 msg/s."""
    lines = [
        "| target | p50 1k | p99 1k | max 1k | p50 10k | p99 10k | max 10k | lost 1k / 10k "
        "| server CPU util 10k |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for label in s.labels_latency:
        r1, r10 = s.latency.get((label, 1000)), s.latency.get((label, 10_000))
        lines.append(
            f"| {label} | {_num(_metric(r1, 'p50_ms'), 1, ' ms')} "
            f"| {_num(_metric(r1, 'p99_ms'), 1, ' ms')}{_flag(r1)} "
            f"| {_num(_metric(r1, 'max_ms'), 1, ' ms')} "
            f"| {_num(_metric(r10, 'p50_ms'), 1, ' ms')} "
            f"| {_num(_metric(r10, 'p99_ms'), 1, ' ms')}{_flag(r10)} "
            f"| {_num(_metric(r10, 'max_ms'), 1, ' ms')} "
            f"| {_num(_metric(r1, 'lost'))} / {_num(_metric(r10, 'lost'))} "
            f"| {_num(_metric(r10, 'server_cpu_util'), 2)} |"
        )
    return "\n".join(lines)


def conns_table(s: Summary) -> str:
    """Accept time, RSS per idle connection, connections held."""
    lines = [
        "| target | accept 10k conns | accepts/s | server CPU per accept | load-gen CPU util "
        "| RSS / idle conn | RSS / conn after a client ping | RSS at 10k | held (of attempted) "
        "| SYN retransmits |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for label in s.labels_conns:
        r = s.conns.get(label)
        tcp = _metric(r, "tcp_during_accept") or {}
        cpu, n = _metric(r, "accept_server_cpu_s"), _metric(r, "connections")
        per_accept = cpu / n * 1e6 if cpu is not None and n else None
        util = (_metric(r, "accept_util") or {}).get("loadgen_cpu_util")
        lines.append(
            f"| {label} | {_num(_metric(r, 'accept_s'), 2, ' s')}{_flag(r)} "
            f"| {_num(_metric(r, 'accept_per_s'))} | {_num(per_accept, 0, ' µs')} "
            f"| {_num(util, 2)} "
            f"| {_num(_metric(r, 'rss_per_conn_kib'), 2, ' KiB')} "
            f"| {_num(_metric(r, 'rss_after_ping_kib'), 2, ' KiB')} "
            f"| {_num(_metric(r, 'rss_mb'), 1, ' MB')} "
            f"| {_num(_metric(r, 'held'))} / {_num(_metric(r, 'attempted'))} "
            f"| {_num(tcp.get('TCPSynRetrans'))} |"
        )
    return "\n".join(lines)


# -- targets ----------------------------------------------------------------------------------
def evaluate(s: Summary) -> list[tuple[str, str, str]]:
    """Return (target from the issue, measured, PASS/FAIL/n/a) rows for pushwire."""
    rows: list[tuple[str, str, str]] = []

    def verdict(ok: bool | None) -> str:
        return "n/a" if ok is None else ("PASS" if ok else "FAIL")

    def fan(label: str, subs: int, key: str) -> Any:
        return _metric(s.fanout.get((label, subs)), key)

    for pub_label in (PW_WS, PW_WS_HTTP):
        for subs, need in ((10_000, 5.0), (1000, 3.0)):
            x = _ratio(
                fan(pub_label, subs, "deliveries_per_s"), fan(NODE, subs, "deliveries_per_s")
            )
            rows.append((
                f"WS fan-out at {subs:,} subs ≥ {need:g}x node-ws deliveries/s ({pub_label})",
                _num(x, 2, "x"),
                verdict(None if x is None else x >= need),
            ))  # fmt: skip
        cpu = fan(pub_label, 10_000, "cpu_s_per_1m")
        rows.append((
            f"WS fan-out at 10,000 subs ≤ 2 CPU s per 1M deliveries ({pub_label})",
            _num(cpu, 2, " s"),
            verdict(None if cpu is None else cpu <= 2.0),
        ))  # fmt: skip
    for subs in (10_000, 1000):
        x = _ratio(fan(PW_SSE, subs, "cpu_s_per_1m"), fan(PW_WS, subs, "cpu_s_per_1m"))
        rows.append((
            f"SSE CPU per 1M deliveries ≤ 1.5x pushwire WS's ({subs:,} subs)",
            _num(x, 2, "x"),
            verdict(None if x is None else x <= 1.5),
        ))  # fmt: skip
    poll = fan(PW_POLL, 10_000, "deliveries_per_s")
    rows.append(("long-poll fan-out documented (10,000 subs)", _num(poll, 0, " deliveries/s"),
                 "n/a" if poll is None else "documented"))  # fmt: skip
    lat = {k: _metric(s.latency.get((k, 10_000)), "p99_ms") for k in (PW_WS, UWS, NODE)}
    x = _ratio(lat[PW_WS], lat[UWS])
    rows.append((
        "p99 latency, 10 msg/s to 10,000 WS subs ≤ 1.5x uWS's",
        f"{_num(lat[PW_WS], 1, ' ms')} vs {_num(lat[UWS], 1, ' ms')} ({_num(x, 2, 'x')})",
        verdict(None if x is None else x <= 1.5),
    ))  # fmt: skip
    x = _ratio(lat[NODE], lat[PW_WS])
    rows.append((
        "p99 latency, 10 msg/s to 10,000 WS subs ≥ 5x better than node-ws's",
        f"{_num(lat[PW_WS], 1, ' ms')} vs {_num(lat[NODE], 1, ' ms')} ({_num(x, 1, 'x')} better)",
        verdict(None if x is None else x >= 5.0),
    ))  # fmt: skip
    pw_runs = [
        r for r in [*s.fanout.values(), *s.latency.values()] if r["label"].startswith("pushwire")
    ]
    lost = sum(_metric(r, "lost") or 0 for r in pw_runs)
    rows.append(("zero messages lost (every pushwire fan-out and latency run shown)",
                 f"{lost:,} lost in {len(pw_runs)} runs",
                 verdict(None if not pw_runs else lost == 0)))  # fmt: skip
    for label, limit in (("pushwire/ws", 4.0), ("pushwire/sse", 6.0)):
        # The larger of the two WebSocket figures: before and after each client's first frame.
        run = s.conns.get(label)
        figures = [_metric(run, "rss_per_conn_kib"), _metric(run, "rss_after_ping_kib")]
        known = [f for f in figures if f is not None]
        rss = max(known) if known else None
        rows.append((
            f"≤ {limit:g} KiB RSS per idle {label.split('/')[1].upper()} connection at 10k",
            _num(rss, 2, " KiB"),
            verdict(None if rss is None else rss <= limit),
        ))  # fmt: skip
    held = _metric(s.conns.get("pushwire/ws"), "held")
    rows.append(("one process holds 19,000 connections (WS)", _num(held),
                 verdict(None if held is None else held >= 19_000)))  # fmt: skip
    a_pw, a_uws = (
        _metric(s.conns.get("pushwire/ws"), "accept_s"),
        _metric(s.conns.get(UWS), "accept_s"),
    )
    x = _ratio(a_pw, a_uws)
    rows.append((
        "accepting 10,000 WS connections no slower than uWS",
        f"{_num(a_pw, 2, ' s')} vs {_num(a_uws, 2, ' s')} ({_num(x, 2, 'x')})",
        verdict(None if x is None else x <= 1.0),
    ))  # fmt: skip
    return rows


def targets_table(s: Summary) -> str:
    """The issue's targets for pushwire with the measured value and a verdict."""
    lines = ["| target (from the issue) | measured | verdict |", "|---|---|---|"]
    lines += [f"| {a} | {b} | **{c}** |" for a, b, c in evaluate(s)]
    return "\n".join(lines)


# -- documents --------------------------------------------------------------------------------
def _merged(doc: dict[str, Any]) -> str:
    sessions = doc.get("merged_from") or []
    if not sessions:
        return ""
    return (
        f" (with `--merge`: runs of {len(sessions)} earlier session(s), {', '.join(sessions)},"
        f" kept; {doc.get('wall_s_before', 0):,.0f} s more)"
    )


def env_table(doc: dict[str, Any]) -> str:
    """The machine and software versions the figures were measured with."""
    env = doc["env"]
    rows = [
        ("CPUs (nproc)", env["nproc"]),
        ("CPU model (/proc/cpuinfo)", env["cpu_model"]),
        ("kernel", env["kernel"]),
        ("memory", f"{env['memory_gib']} GiB"),
        ("Python", env["python"]),
        ("Node.js / npm", f"{env['node']} / {env['npm']}"),
        *((f"package {k}", v) for k, v in env["packages"].items()),
        ("pushwire commit", env["pushwire_commit"]),
        ("RLIMIT_NOFILE (soft, hard)", ", ".join(map(str, env["rlimit_nofile"]))),
        ("net.core.somaxconn", env["somaxconn"]),
        ("net.ipv4.tcp_tw_reuse", env["tcp_tw_reuse"]),
        ("ephemeral ports", env["ip_local_port_range"].replace("\t", "-")),
        ("server pinned to CPUs", env["server_cpus"] or "not pinned"),
        ("load generator pinned to CPUs", env["loadgen_cpus"] or "not pinned"),
    ]
    lines = ["| | |", "|---|---|"] + [f"| {k} | {v} |" for k, v in rows]
    return "\n".join(lines)


def render_markdown(doc: dict[str, Any]) -> str:
    """The generated results section (also written alone as bench-results.md)."""
    s = summarize(doc["runs"])
    env = doc["env"]
    errors = [
        f"- {r['spec']['scenario']} {r['label']} x{r['spec']['subscribers']:,}: {e[:400]}"
        for r in doc["runs"]
        for e in r["errors"]
    ]
    parts = [
        f"Measured {doc['generated']} by `python -m bench matrix"
        f"{' --quick' if doc.get('quick') else ''}` in {doc.get('wall_s', 0):,.0f} s"
        f"{_merged(doc)} "
        f"on {env['nproc']} x {env['cpu_model']}, Linux {env['kernel']}; "
        f"pushwire {env['packages']['pushwire']} ({env['pushwire_commit']}), "
        f"Python {env['python']}, Node {env['node']}. Background CPU load before/after the "
        f"matrix: {_num(doc.get('background_load_before'), 2)} / "
        f"{_num(doc.get('background_load_after'), 2)} of all cores. "
        "⚠ marks a run that reported an error (listed at the end).",
        "### Machine and versions",
        env_table(doc),
        "### Targets",
        targets_table(s),
        "### Fan-out (publishers back to back, ~100-byte messages)",
        fanout_table(s),
        f"![fan-out deliveries/s]({FANOUT_PNG})",
        "Who was busy during each fan-out run (CPU-seconds per wall-second):",
        fanout_health_table(s),
        "### Short bursts (30 publications at once to 10,000 subscribers)",
        burst_table(s),
        "### Latency (publish to receive, 10 msg/s)",
        latency_table(s),
        "### Connections",
        conns_table(s),
    ]
    if errors:
        parts += ["### Errors reported by runs", "\n".join(errors)]
    return "\n\n".join(parts) + "\n"


def render_plot(doc: dict[str, Any], path: Path) -> None:
    """Bar chart: deliveries/s and server CPU s per 1M deliveries, per target, 1k and 10k."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = summarize(doc["runs"])
    labels = s.labels_fanout
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 4.8))
    width = 0.38
    xs = range(len(labels))
    for offset, subs, color in ((-width / 2, 1000, "#4c72b0"), (width / 2, 10_000, "#dd8452")):
        rates = [
            (_metric(s.fanout.get((lb, subs)), "deliveries_per_s") or 0) / 1e3 for lb in labels
        ]
        cpus = [_metric(s.fanout.get((lb, subs)), "cpu_s_per_1m") or 0 for lb in labels]
        ax1.bar([x + offset for x in xs], rates, width, label=f"{subs:,} subscribers", color=color)
        ax2.bar([x + offset for x in xs], cpus, width, label=f"{subs:,} subscribers", color=color)
    for ax, title in (
        (ax1, "deliveries/s (thousands), higher is better"),
        (ax2, "server CPU s per 1M deliveries, lower is better"),
    ):
        ax.set_xticks(list(xs))
        ax.set_xticklabels([lb.replace(" (", "\n(") for lb in labels], fontsize=8)
        ax.set_title(title, fontsize=10)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=8)
    ax2.set_yscale("log")
    fig.suptitle(f"Fan-out on {doc['env']['nproc']} cores ({doc['generated']})", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def render_all(out: Path) -> None:
    """Write bench-results.md and bench-fanout.png; refresh performance.md's section."""
    doc = json.loads((out / RESULTS_JSON).read_text())
    md = render_markdown(doc)
    (out / RESULTS_MD).write_text("# Benchmark results\n\n" + md)
    render_plot(doc, out / FANOUT_PNG)
    perf = out / PERF_MD
    if perf.exists():
        text = perf.read_text()
        if BEGIN in text and END in text:
            head, rest = text.split(BEGIN, 1)
            _, tail = rest.split(END, 1)
            perf.write_text(f"{head}{BEGIN}\n{md}{END}{tail}")
