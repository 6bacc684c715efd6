"""Command line: ``python -m bench {fanout,burst,latency,conns,cluster,publish-rate,storm,...}``.

One command per scenario for poking at a single figure, and ``matrix`` for the whole comparison
that writes docs/bench-results.{md,json} and docs/bench-fanout.png.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bench.affinity import set_enabled as set_pinning
from bench.scenarios import RunSpec, run
from bench.soak_load import BEHAVIOURS, PUBLISHERS, names_in
from bench.targets import TARGETS, ensure_peers_installed

DOCS = Path(__file__).resolve().parent.parent / "docs"


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--target", choices=sorted(TARGETS), default="pushwire")
    p.add_argument("--transport", choices=["ws", "sse", "poll"], default="ws")
    p.add_argument("--workers", type=int, default=2, help="load-generator processes")
    p.add_argument("--json", type=Path, help="also write the result as JSON here")
    p.add_argument("--no-pin", action="store_true", help="do not pin server/load-gen CPUs")


def _publisher(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--publisher", choices=["ws", "http"], default="ws",
        help="pushwire only: pipelined WebSocket or 8 keep-alive HTTP connections",
    )  # fmt: skip


def _history(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--history", choices=["memory", "sqlite"], default="memory",
        help="pushwire only: history in memory (--memory) or in SQLite (as `pushwire serve`)",
    )  # fmt: skip


def _cluster_common(
    p: argparse.ArgumentParser, *, broker_default: str, subscribers: int, publisher: str = "ws"
) -> None:
    from bench.cluster import BROKER_URLS

    p.add_argument("--broker", choices=["memory", *sorted(BROKER_URLS)], default=broker_default)
    p.add_argument("--broker-url", default="", help="default: redis://127.0.0.1:6379/8 etc.")
    p.add_argument("--transport", choices=["ws", "sse", "poll"], default="ws")
    p.add_argument(
        "--publisher", choices=["ws", "http"], default=publisher,
        help="pipelined WebSocket or 8 keep-alive HTTP connections, to the first node",
    )  # fmt: skip
    p.add_argument(
        "--http-connections", type=int, default=8,
        help="--publisher http: keep-alive connections (each one's requests run in order)",
    )  # fmt: skip
    p.add_argument("--subscribers", type=int, default=subscribers, help="in all, over the nodes")
    p.add_argument("--duration", type=float, default=8.0, help="seconds of publishing")
    p.add_argument("--max-messages", type=int, default=200_000)
    p.add_argument("--window", type=int, default=0, help="fixed publisher window; 0: adaptive")
    p.add_argument(
        "--verify", action="store_true",
        help="check every delivery's stream offset: repeats and skips counted (slower readers)",
    )  # fmt: skip
    p.add_argument("--workers", type=int, default=2, help="load-generator processes")
    p.add_argument("--json", type=Path, help="also write the result as JSON here")
    p.add_argument("--no-pin", action="store_true", help="do not pin server/load-gen CPUs")


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser (one sub-command per scenario)."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("fanout", help="deliveries/s and CPU per 1M deliveries, back to back")
    _common(p)
    _publisher(p)
    p.add_argument("--subscribers", type=int, default=1000)
    p.add_argument("--duration", type=float, default=8.0, help="seconds of publishing")
    p.add_argument("--max-messages", type=int, default=200_000)
    p.add_argument("--window", type=int, default=0, help="fixed publisher window; 0: adaptive")
    _history(p)

    p = sub.add_parser(
        "burst", help="CPU per 1M deliveries of short bursts (30 publications in one write)"
    )
    _common(p)
    _publisher(p)
    _history(p)
    p.add_argument("--subscribers", type=int, default=10_000)
    p.add_argument("--burst", type=int, default=30, help="publications per burst")
    p.add_argument("--bursts", type=int, default=10, help="bursts, each drained before the next")

    p = sub.add_parser("latency", help="publish-to-receive latency at a fixed rate")
    _common(p)
    _publisher(p)
    p.add_argument("--subscribers", type=int, default=1000)
    p.add_argument("--rate", type=float, default=10.0, help="messages per second")
    p.add_argument("--duration", type=float, default=10.0, help="seconds of publishing")

    p = sub.add_parser("conns", help="accept time, RSS per idle connection, max connections")
    _common(p)
    p.add_argument("--connections", type=int, default=10_000)
    p.add_argument("--max-connections", type=int, default=19_000)

    p = sub.add_parser("cluster", help="fan-out over several pushwire nodes on one broker")
    _cluster_common(p, broker_default="redis", subscribers=3000)
    p.add_argument("--nodes", type=int, default=1, help="pushwire serve processes (ports)")
    p.add_argument(
        "--serve-workers", type=int, default=0, metavar="N",
        help="instead of --nodes: one `pushwire serve --workers N` (SO_REUSEPORT processes)",
    )  # fmt: skip

    p = sub.add_parser("publish-rate", help="publications/s through one node, per history store")
    _cluster_common(p, broker_default="memory", subscribers=1, publisher="http")
    p.add_argument(
        "--memory", action="store_true",
        help="embedded broker only: history in memory (default: SQLite, as `pushwire serve`)",
    )  # fmt: skip

    p = sub.add_parser("matrix", help="run every target and scenario, write the docs/ files")
    p.add_argument("--quick", action="store_true", help="fewer subscribers, shorter runs")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="runs per configuration (fan-out: fastest kept; latency, accept: median)",
    )
    p.add_argument("--only", nargs="*", help="labels or targets to run (default: all)")
    p.add_argument("--scenario", nargs="*", choices=["fanout", "burst", "latency", "conns"],
                   help="scenarios to run (default: all)")  # fmt: skip
    p.add_argument(
        "--merge", action="store_true",
        help="add to the runs already in bench-results.json instead of replacing them",
    )  # fmt: skip
    p.add_argument("--out", type=Path, default=DOCS)
    p.add_argument("--no-pin", action="store_true", help="do not pin server/load-gen CPUs")

    p = sub.add_parser("report", help="re-render the Markdown table and plot from the JSON")
    p.add_argument("--out", type=Path, default=DOCS)

    p = sub.add_parser(
        "accept-probe",
        help="pushwire's Python cost per WebSocket accept, and a bare uvloop server's floor",
    )
    p.add_argument("--connections", type=int, default=10_000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--workers", type=int, default=2, help="load-generator processes")
    p.add_argument("--json", type=Path, help="also write the result as JSON here")
    p.add_argument("--no-pin", action="store_true", help="do not pin server/load-gen CPUs")

    p = sub.add_parser(
        "idle-channels",
        help="RSS after 100,000 made-up channels are named once, and after the sweep",
    )
    p.add_argument("--rounds", type=int, default=50)
    p.add_argument("--connections", type=int, default=10)
    p.add_argument("--channels", type=int, default=200, help="per connection")
    p.add_argument("--memory", action="store_true", help="history in memory (default SQLite)")
    p.add_argument("--publish", action="store_true", help="also publish once to each channel")
    p.add_argument("--meta-ttl", type=float, default=5.0, help="history_meta_ttl_seconds")
    p.add_argument("--json", type=Path, help="also write the result as JSON here")

    p = sub.add_parser(
        "mqtt", help="MQTT messages/s the bridge carries into a channel with many subscribers"
    )
    p.add_argument("--subscribers", type=int, default=1000)
    p.add_argument("--duration", type=float, default=8.0, help="seconds of publishing")
    p.add_argument("--max-messages", type=int, default=200_000)
    p.add_argument("--workers", type=int, default=2, help="load-generator processes")
    p.add_argument("--json", type=Path, help="also write the result as JSON here")
    p.add_argument("--no-pin", action="store_true", help="do not pin server/load-gen CPUs")

    p = sub.add_parser(
        "storm", help="reconnect storm: SIGKILL and restart under N subscribers, count losses"
    )
    p.add_argument("--clients", type=int, default=10_000)
    p.add_argument("--rate", type=float, default=20.0, help="publications/s (HTTP API)")
    p.add_argument("--kill-after", type=float, default=5.0, help="seconds before the SIGKILL")
    p.add_argument("--down", type=float, default=2.0, help="seconds before the restart")
    p.add_argument("--tail", type=float, default=3.0, help="seconds published after all back")
    p.add_argument("--workers", type=int, default=2, help="load-generator processes")
    p.add_argument("--settle-timeout", type=float, default=120.0)
    p.add_argument("--json", type=Path, help="also write the result as JSON here")

    p = sub.add_parser(
        "soak", help="churning, clumsy clients for N minutes; server RSS, files, lag sampled"
    )
    p.add_argument("--minutes", type=float, default=30.0)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--memory", action="store_true", help="history in memory (default SQLite)")
    p.add_argument("--actors", type=int, default=800, help="clients at once (each one connection)")
    p.add_argument("--interval", type=float, default=5.0, help="seconds between samples")
    p.add_argument("--warm-up", type=float, help="seconds not counted in the slope")
    p.add_argument("--cool-down", type=float, default=30.0, help="sampling after the load")
    p.add_argument("--out", type=Path, default=DOCS / "soak.jsonl", help="the samples (JSONL)")
    p.add_argument("--plot", type=Path, default=DOCS / "images" / "soak-rss.png")
    p.add_argument("--no-plot", action="store_true")
    p.add_argument(
        "--trace", type=Path, metavar="DIR",
        help="server under tracemalloc; what grew is written to DIR (slows the server)",
    )  # fmt: skip
    p.add_argument(
        "--trim-probe", action="store_true",
        help="with --trace: no tracemalloc; malloc_trim(0) at those points, RSS before/after",
    )  # fmt: skip
    p.add_argument(
        "--heap", action="store_true",
        help="server on jemalloc; its live heap sampled beside RSS (leak or fragmentation?)",
    )  # fmt: skip
    p.add_argument(
        "--behaviours", type=names_in(BEHAVIOURS), default=BEHAVIOURS, metavar="A,B",
        help=f"only these client behaviours ('' for none): {','.join(BEHAVIOURS)}",
    )  # fmt: skip
    p.add_argument(
        "--publishers", type=names_in(PUBLISHERS), default=PUBLISHERS, metavar="A,B",
        help=f"only these publishers ('' for none): {','.join(PUBLISHERS)}",
    )  # fmt: skip

    p = sub.add_parser(
        "memory", help="RSS per live channel, subscription and idle connection (per transport)"
    )
    p.add_argument("--count", type=int, default=10_000, help="items added per measurement")
    p.add_argument("--repeat", type=int, default=3, help="fresh servers per case")
    p.add_argument("--case", nargs="*", help="cases to run (default: all)")
    p.add_argument("--json", type=Path, help="also write the result as JSON here")

    p = sub.add_parser(
        "trim-cost", help="how long glibc's malloc_trim(0) takes on fragmented heaps"
    )
    p.add_argument("--heap", type=int, nargs="*", default=[100, 500, 2000], metavar="MIB")

    sub.add_parser("selftest", help="check the readers' counting on synthetic streams")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    args = build_parser().parse_args(argv)
    if args.command == "selftest":
        from bench.selftest import selftest

        return selftest()
    if args.command == "trim-cost":
        from bench.trim_cost import measure_trims

        print(json.dumps(measure_trims(args.heap), indent=2))
        return 0
    if args.command == "report":
        from bench.report import render_all

        render_all(args.out)
        return 0
    if args.command == "idle-channels":
        from bench.idle_channels import main_json, probe as idle_probe

        found = idle_probe(
            rounds=args.rounds,
            connections=args.connections,
            channels=args.channels,
            memory=args.memory,
            publish=args.publish,
            meta_ttl_seconds=args.meta_ttl,
        )
        main_json(found, args.json)
        return 0
    if args.command == "storm":
        from bench.storm import StormSpec, run_storm, summary

        storm = StormSpec(
            clients=args.clients,
            rate=args.rate,
            kill_after=args.kill_after,
            down=args.down,
            tail=args.tail,
            workers=args.workers,
            settle_timeout=args.settle_timeout,
        )
        found = run_storm(storm)
        print(json.dumps(found, indent=2))
        print(summary(found), file=sys.stderr)
        if args.json:
            args.json.write_text(json.dumps(found, indent=2) + "\n")
        return 1 if found["errors"] else 0
    if args.command == "soak":
        return _run_soak(args)
    if args.command == "memory":
        from bench.memory import CASES, measure

        unknown = set(args.case or ()) - set(CASES)
        if unknown:
            raise SystemExit(f"unknown case(s) {sorted(unknown)}; choose from {sorted(CASES)}")
        found = measure(count=args.count, repeat=args.repeat, cases=args.case)
        print(json.dumps(found, indent=2))
        if args.json:
            args.json.write_text(json.dumps(found, indent=2) + "\n")
        return 0
    set_pinning(not args.no_pin)
    if args.command == "mqtt":
        from bench.mqtt import run_mqtt

        found = run_mqtt(
            subscribers=args.subscribers,
            duration=args.duration,
            max_messages=args.max_messages,
            workers=args.workers,
        )
        print(json.dumps(found, indent=2))
        if args.json:
            args.json.write_text(json.dumps(found, indent=2) + "\n")
        return 1 if found["errors"] else 0
    if args.command == "accept-probe":
        from bench.accept_probe import probe

        found = probe(args.connections, args.workers, args.rounds)
        print(json.dumps(found, indent=2))
        if args.json:
            args.json.write_text(json.dumps(found, indent=2) + "\n")
        return 0
    if args.command in ("cluster", "publish-rate"):
        return _run_cluster(args)
    if args.command == "matrix":
        from bench.matrix import run_matrix

        ensure_peers_installed()
        return run_matrix(
            args.out, args.quick, args.workers, args.repeat, args.only, args.merge, args.scenario
        )
    if args.target != "pushwire":
        ensure_peers_installed()
    spec = RunSpec(scenario=args.command, target=args.target, transport=args.transport)
    spec.workers = args.workers
    for name in ("publisher", "subscribers", "duration", "max_messages", "rate",
                 "connections", "max_connections", "window", "history", "burst",
                 "bursts"):  # fmt: skip
        if hasattr(args, name):
            setattr(spec, name, getattr(args, name))
    result = run(spec)
    out = result.to_json()
    print(json.dumps(out, indent=2))
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")
    return 1 if result.errors else 0


def _run_soak(args: argparse.Namespace) -> int:
    from bench.soak import SoakSpec, soak

    summary = soak(
        SoakSpec(
            seconds=args.minutes * 60,
            seed=args.seed,
            memory=args.memory,
            actors=args.actors,
            interval=args.interval,
            warm_up=args.warm_up,
            cool_down=args.cool_down,
            out=args.out,
            plot=None if args.no_plot else args.plot,
            trace=args.trace,
            trim_probe=args.trim_probe,
            heap=args.heap,
            behaviours=args.behaviours,
            publishers=args.publishers,
        )
    )
    print(json.dumps(summary, indent=2))
    healthy = summary["server_exit"] is None and summary["samples"] > 1
    return 0 if healthy and "error" not in summary["load"] else 1


def _run_cluster(args: argparse.Namespace) -> int:
    from bench.cluster import ClusterSpec, run as run_cluster

    spec = ClusterSpec(scenario=args.command, target="pushwire", transport=args.transport)
    for name in ("publisher", "subscribers", "duration", "max_messages", "window", "workers",
                 "broker", "broker_url", "verify", "nodes", "serve_workers",
                 "http_connections"):  # fmt: skip
        if hasattr(args, name):
            setattr(spec, name, getattr(args, name))
    if args.command == "publish-rate":
        spec.history = "memory" if args.memory else "sqlite"
    if spec.broker == "memory" and args.command == "cluster":
        raise SystemExit("cluster needs a shared broker: --broker redis (or nats)")
    result = run_cluster(spec)
    out = result.to_json()
    print(json.dumps(out, indent=2))
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")
    return 1 if result.errors else 0


if __name__ == "__main__":
    sys.exit(main())
