"""Made-up channels: does naming many channels once grow the server for good?

``python -m bench idle-channels``: a ``pushwire serve`` process (memory or SQLite
history) gets ``rounds`` x ``connections`` anonymous WebSockets that each subscribe
to ``channels`` random channel names and disconnect (100,000 names by default); with
``--publish`` each name is also published to once, so that streams exist and have
to expire. The server's RSS is sampled before, right after, and once the history
sweep has had ``history_meta_ttl_seconds`` (set short here) to forget what it may.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
from websockets.asyncio.client import connect

from bench.procstat import rss_bytes
from bench.targets import HOST, free_port, http_status

__all__ = ["probe"]

API_KEY = "bench-key"


def probe(
    *,
    rounds: int = 50,
    connections: int = 10,
    channels: int = 200,
    memory: bool = False,
    publish: bool = False,
    meta_ttl_seconds: float = 5.0,
) -> dict[str, Any]:
    """Run the scenario once and return the RSS figures (MiB) and the settings."""
    port = free_port()
    with tempfile.TemporaryDirectory() as data_dir:
        env = dict(os.environ)
        env.update(
            PUSHWIRE_API_KEY=API_KEY,
            PUSHWIRE_DATA_DIR=data_dir,
            PUSHWIRE_HISTORY_META_TTL_SECONDS=str(meta_ttl_seconds),
            PUSHWIRE_MAX_PUBLISHES_PER_SECOND="0",
            PUSHWIRE_LOG_LEVEL="warning",
        )
        command = [sys.executable, "-m", "pushwire", "serve", "--port", str(port)]
        if memory:
            command.append("--memory")
        server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
        try:
            _wait_healthy(port)
            asyncio.run(_warm_up(port))
            before = rss_bytes(server.pid)
            started = time.monotonic()
            asyncio.run(_name_channels(port, rounds, connections, channels, publish))
            named_in = time.monotonic() - started
            right_after = rss_bytes(server.pid)
            # The sweep looks at up to 1000 streams a second once they are idle.
            time.sleep(meta_ttl_seconds + rounds * connections * channels / 1000 + 3)
            after_sweep = rss_bytes(server.pid)
        finally:
            server.terminate()
            server.wait(15)
    mib = 1024 * 1024
    return {
        "history": "memory" if memory else "sqlite",
        "channels_named": rounds * connections * channels,
        "published_to_each": publish,
        "seconds_naming": round(named_in, 1),
        "rss_before_mib": round(before / mib, 1),
        "rss_right_after_mib": round(right_after / mib, 1),
        "rss_after_sweep_mib": round(after_sweep / mib, 1),
        "growth_after_sweep_mib": round((after_sweep - before) / mib, 1),
    }


def _wait_healthy(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if http_status(port, "/health") == 200:
            return
        time.sleep(0.05)
    raise RuntimeError("pushwire serve did not become healthy")


async def _warm_up(port: int) -> None:
    """One round trip of everything, so that lazily made objects are not counted as growth."""
    await _name_channels(port, 1, 2, 50, publish=True)


async def _name_channels(
    port: int, rounds: int, connections: int, channels: int, publish: bool
) -> None:
    for _ in range(rounds):
        await asyncio.gather(*(_one(port, channels, publish) for _ in range(connections)))


async def _one(port: int, channels: int, publish: bool) -> None:
    names = [f"made-up:{secrets.token_hex(8)}" for _ in range(channels)]
    async with connect(f"ws://{HOST}:{port}/ws", max_queue=None) as ws:
        for n, name in enumerate(names):
            await ws.send(orjson.dumps({"type": "subscribe", "channel": name, "ref": n}))
            if publish:
                await ws.send(orjson.dumps({"type": "publish", "channel": name, "data": n}))
        expected = channels * (3 if publish else 1)  # subscribed (+ published + message)
        for _ in range(expected):
            await asyncio.wait_for(ws.recv(), 30)


def main_json(result: dict[str, Any], path: Path | None) -> None:
    text = orjson.dumps(result, option=orjson.OPT_INDENT_2).decode()
    print(text)
    if path is not None:
        path.write_text(text + "\n")
