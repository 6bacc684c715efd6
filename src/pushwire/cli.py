"""The ``pushwire`` command: ``serve`` runs a server, ``publish`` sends one message,
``subscribe`` prints a channel's messages as they arrive, ``token`` mints a connection token."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import os
import re
import signal
import sys
from collections.abc import Sequence

import orjson

from pushwire.errors import PushwireError, UsageError
from pushwire.server.app import Server
from pushwire.server.config import Config, load_config
from pushwire.server.logs import configure_logging
from pushwire.server.memory_trim import MemoryTrimmer
from pushwire.server.workers import WorkerSetup, follow_supervisor, run_workers, worker_setup

__all__ = ["main"]

_DURATION = re.compile(r"(\d+)([smhd]?)")
_SECONDS_PER_UNIT = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        if args.command == "serve":
            return _serve(args)
        if args.command == "subscribe":
            return _subscribe(args)
        if args.command == "token":
            return _token(args)
        return _publish(args)
    except UsageError as exc:
        print(f"pushwire: {exc}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pushwire", description=__doc__)
    commands = parser.add_subparsers(dest="command")
    serve = commands.add_parser("serve", help="run a pushwire server")
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (default 8000)")
    serve.add_argument("--data-dir", help="where SQLite history lives (default ./pushwire-data)")
    serve.add_argument("--config", help="TOML configuration file")
    serve.add_argument(
        "--memory", action="store_true", help="keep history in memory only (no files)"
    )
    serve.add_argument(
        "--broker",
        help="memory (default), redis://HOST:6379/0 or nats://HOST:4222: the broker nodes share",
    )
    serve.add_argument(
        "--workers", type=int, help="processes on one port (needs a Redis or NATS --broker)"
    )
    serve.add_argument(
        "--mqtt",
        metavar="URL",
        help="bridge to an MQTT broker, mqtt://HOST:1883 or mqtts://... (routes: [[mqtt.routes]])",
    )
    serve.add_argument("--echo", action="store_true", help="serve /echo (conformance tests)")
    serve.add_argument(
        "--no-demo", action="store_true", help="do not serve the demo chat at / (and /demo/*)"
    )
    serve.add_argument("--max-message-bytes", type=int, help="largest client message")
    serve.add_argument("--log-level", help="debug, info, warning or error")
    serve.add_argument(
        "--log-format",
        choices=["text", "json"],
        help="text (default), or json lines for collectors",
    )
    publish = commands.add_parser("publish", help="publish one message over the HTTP API")
    publish.add_argument("channel")
    publish.add_argument("data", help='the message as JSON, e.g. \'{"text": "hi"}\'')
    publish.add_argument("--event", help="event name (SSE event:)")
    publish.add_argument("--url", default=os.environ.get("PUSHWIRE_URL", "http://127.0.0.1:8000"))
    publish.add_argument("--api-key", default=os.environ.get("PUSHWIRE_API_KEY"))
    subscribe = commands.add_parser(
        "subscribe",
        help="print messages as JSON lines as they arrive (status on stderr)",
        description="Print each message on the channels as one JSON line on stdout, "
        "reconnecting and recovering missed messages until Ctrl-C or SIGTERM.",
    )
    subscribe.add_argument("channels", nargs="+", metavar="CHANNEL")
    subscribe.add_argument("--url", default=os.environ.get("PUSHWIRE_URL", "http://127.0.0.1:8000"))
    subscribe.add_argument(
        "--token",
        default=os.environ.get("PUSHWIRE_TOKEN") or None,
        help="connection token (JWT), e.g. from `pushwire token USER`; env PUSHWIRE_TOKEN",
    )
    token = commands.add_parser(
        "token",
        help="print a connection token signed with the configured secret (development)",
        description="Print a token for USER signed with token_secret (HS256), from --config "
        "FILE, PUSHWIRE_TOKEN_SECRET or --secret. Production tokens come from your backend.",
    )
    token.add_argument("user", metavar="USER", help="the user id (the token's sub)")
    token.add_argument("--info", help='JSON object shown in presence, e.g. \'{"name": "Ann"}\'')
    token.add_argument("--ttl", default="1h", help="lifetime: 90, 90s, 15m, 1h or 7d (default 1h)")
    token.add_argument(
        "--channel",
        action="append",
        default=[],
        metavar="NAME",
        help="an extra channel the token may subscribe to (repeatable)",
    )
    token.add_argument("--config", help="TOML configuration file (for token_secret)")
    token.add_argument(
        "--secret", help="the HS256 secret (visible in ps; prefer PUSHWIRE_TOKEN_SECRET)"
    )
    return parser


def _serve(args: argparse.Namespace) -> int:
    # A worker of `pushwire serve --workers N` serves its supervisor's configuration.
    worker = worker_setup()
    config = _serve_config(args) if worker is None else worker.config
    if worker is not None and config.mqtt is not None:
        config = config.replace(mqtt=config.mqtt.for_worker(worker.index, config.port))
    _configure_logging(config, worker)
    if worker is None and config.workers > 1:
        return run_workers(config)
    _raise_open_files_limit()
    server = Server(config, demo_secret=None if worker is None else worker.demo_secret)
    _tune_garbage_collector()
    if server.api_key.generated:
        print(
            f"pushwire: no API key configured; generated one: {server.api_key.value}",
            file=sys.stderr,
        )
    lifeline = None if worker is None else worker.lifeline_fd
    try:
        import uvloop

        uvloop.run(_run_until_signal(server, lifeline))
    except ImportError:
        asyncio.run(_run_until_signal(server, lifeline))
    return 0


def _serve_config(args: argparse.Namespace) -> Config:
    overrides = {
        "host": args.host,
        "port": args.port,
        "data_dir": args.data_dir,
        "max_message_bytes": args.max_message_bytes,
        "log_level": args.log_level,
        "log_format": args.log_format,
        "history": "memory" if args.memory else None,
        "broker": args.broker,
        "workers": args.workers,
        "echo": True if args.echo else None,
        "demo": False if args.no_demo else None,
        "mqtt": {"url": args.mqtt},
    }
    return load_config(args.config, overrides=overrides)


def _configure_logging(config: Config, worker: WorkerSetup | None) -> None:
    """One line per event; a worker's lines say which worker, as the supervisor's do."""
    origin = "" if worker is None else f" (worker {worker.index}, pid %(process)d)"
    configure_logging(
        config.log_level,
        config.log_format,
        text_format=f"%(asctime)s %(levelname)s %(name)s{origin}: %(message)s",
        fields=None if worker is None else {"worker": str(worker.index)},
    )


def _tune_garbage_collector() -> None:
    """Collect less often: a push server is mostly long-lived per-connection objects.

    With the default thresholds a collection runs every ~700 new objects, about
    every 35 accepted connections, and keeps re-examining objects that will live
    as long as their connection (10-15% of the CPU of accepting 10,000 WebSocket
    connections, measured). Freezing what start-up created and raising the first
    threshold collects in fewer, larger batches while connections pile up. Done by
    the command, not the library: an application embedding pushwire keeps its own.

    The price: the first threshold counts allocations minus frees, so in a steady
    state (as many objects freed as made) even a young collection is rare (the soak:
    3 in 8 minutes) and a full one hours apart; whatever is left in a reference cycle
    stays that long. Nothing per connection may need the collector to be freed
    (tests/server/test_reference_cycles.py checks).
    """
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


def _raise_open_files_limit() -> None:
    """Every client is an open file: lift the soft limit (often 1024) to the hard one."""
    try:
        import resource
    except ImportError:  # not on Windows
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def _run_until_signal(server: Server, lifeline_fd: int | None = None) -> None:
    """Serve until SIGTERM or SIGINT, or, for a worker, until its supervisor is gone."""
    try:
        await server.start()
    except OSError as exc:
        address = f"{server.config.host}:{server.config.port}"
        raise UsageError(f"cannot listen on {address}: {exc}") from None
    trimmer = MemoryTrimmer(server.config.memory_trim_interval_seconds)
    trimmer.start()
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if lifeline_fd is not None:
        follow_supervisor(lifeline_fd, stop.set)
    await stop.wait()
    trimmer.stop()
    await server.stop()


def _publish(args: argparse.Namespace) -> int:
    # Imported here: `pushwire serve` must not need the client's dependencies (httpx).
    from pushwire.client.api import ApiClient

    try:
        data = orjson.loads(args.data)
    except orjson.JSONDecodeError as exc:
        raise UsageError(f"data is not valid JSON: {exc}") from None
    with ApiClient(args.url, args.api_key) as api:
        try:
            result = api.publish(args.channel, data, event=args.event)
        except PushwireError as exc:  # refused (with the server's code), unreachable, no answer
            print(f"pushwire: {exc}", file=sys.stderr)
            return 1
    print(orjson.dumps({"channel": result.channel, "id": result.id}).decode())
    return 0


def _token(args: argparse.Namespace) -> int:
    # Imported here: only this command needs PyJWT and cryptography loaded.
    from pushwire.server.tokens import verifier_from_config

    ttl_seconds = _duration_seconds(args.ttl)
    info = None
    if args.info is not None:
        try:
            info = orjson.loads(args.info)
        except orjson.JSONDecodeError as exc:
            raise UsageError(f"--info is not valid JSON: {exc}") from None
        if not isinstance(info, dict):
            raise UsageError('--info must be a JSON object, like \'{"name": "Ann"}\'')
    config = load_config(args.config, overrides={"token_secret": args.secret})
    verifier = verifier_from_config(config)
    if verifier is None:
        raise UsageError(
            "no token_secret configured: set PUSHWIRE_TOKEN_SECRET, token_secret in the "
            "--config file, or pass --secret"
        )
    print(verifier.mint(args.user, info=info, channels=args.channel, ttl_seconds=ttl_seconds))
    return 0


def _duration_seconds(text: str) -> int:
    """``90``, ``90s``, ``15m``, ``1h``, ``7d`` in seconds."""
    match = _DURATION.fullmatch(text.strip())
    if match is None or int(match[1]) == 0:
        raise UsageError(
            f"--ttl must be a positive duration like 90, 90s, 15m, 1h or 7d, not {text!r}"
        )
    return int(match[1]) * _SECONDS_PER_UNIT[match[2]]


def _subscribe(args: argparse.Namespace) -> int:
    from pushwire.client.command import follow

    try:
        return asyncio.run(follow(args.url, args.channels, token=args.token))
    except KeyboardInterrupt:  # Ctrl-C before the signal handlers were installed
        return 130
