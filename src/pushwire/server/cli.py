"""The ``pushwire`` command: ``serve`` runs a server, ``publish`` sends one message."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence

import orjson

from pushwire.errors import PushwireError, UsageError
from pushwire.server.app import Server
from pushwire.server.config import load_config

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        if args.command == "serve":
            return _serve(args)
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
    serve.add_argument("--echo", action="store_true", help="serve /echo (conformance tests)")
    serve.add_argument("--max-message-bytes", type=int, help="largest client message")
    serve.add_argument("--log-level", help="debug, info, warning or error")
    publish = commands.add_parser("publish", help="publish one message over the HTTP API")
    publish.add_argument("channel")
    publish.add_argument("data", help='the message as JSON, e.g. \'{"text": "hi"}\'')
    publish.add_argument("--event", help="event name (SSE event:)")
    publish.add_argument("--url", default=os.environ.get("PUSHWIRE_URL", "http://127.0.0.1:8000"))
    publish.add_argument("--api-key", default=os.environ.get("PUSHWIRE_API_KEY"))
    return parser


def _serve(args: argparse.Namespace) -> int:
    overrides = {
        "host": args.host,
        "port": args.port,
        "data_dir": args.data_dir,
        "max_message_bytes": args.max_message_bytes,
        "log_level": args.log_level,
        "history": "memory" if args.memory else None,
        "echo": True if args.echo else None,
    }
    config = load_config(args.config, overrides=overrides)
    logging.basicConfig(
        level=config.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    server = Server(config)
    if server.api_key.generated:
        print(
            f"pushwire: no API key configured; generated one: {server.api_key.value}",
            file=sys.stderr,
        )
    try:
        import uvloop

        uvloop.run(_run_until_signal(server))
    except ImportError:
        asyncio.run(_run_until_signal(server))
    return 0


async def _run_until_signal(server: Server) -> None:
    try:
        await server.start()
    except OSError as exc:
        address = f"{server.config.host}:{server.config.port}"
        raise UsageError(f"cannot listen on {address}: {exc}") from None
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop()


def _publish(args: argparse.Namespace) -> int:
    try:
        data = orjson.loads(args.data)
    except orjson.JSONDecodeError as exc:
        raise UsageError(f"data is not valid JSON: {exc}") from None
    if not args.api_key:
        raise UsageError("set PUSHWIRE_API_KEY or pass --api-key")
    body: dict[str, object] = {"channel": args.channel, "data": data}
    if args.event:
        body["event"] = args.event
    request = urllib.request.Request(
        args.url.rstrip("/") + "/api/publish",
        data=orjson.dumps(body),
        headers={"Content-Type": "application/json", "X-API-Key": args.api_key},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            print(response.read().decode())
            return 0
    except urllib.error.HTTPError as exc:
        print(f"pushwire: {exc.code} {exc.read().decode(errors='replace')}", file=sys.stderr)
        return 1
    except (urllib.error.URLError, OSError) as exc:
        raise PushwireError(f"cannot reach {args.url}: {exc}") from None
