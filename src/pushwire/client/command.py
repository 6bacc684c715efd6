"""``pushwire subscribe``: print channels' messages as JSON lines, across reconnects.

Standard output carries nothing but messages, one JSON object per line, so it
can be piped into ``jq`` or another program; connection status and gap notices
go to standard error.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Sequence
from typing import TextIO

import orjson

from pushwire.client.client import Client
from pushwire.client.messages import Gap, Message
from pushwire.client.options import ClientOptions
from pushwire.client.subscription import Subscription
from pushwire.errors import PushwireError

__all__ = ["follow"]


async def follow(
    url: str | None,
    channels: Sequence[str],
    *,
    options: ClientOptions | None = None,
    token: str | None = None,
    stdout: TextIO = sys.stdout,
    stderr: TextIO = sys.stderr,
) -> int:
    """Print every message on ``channels`` until SIGINT or SIGTERM; returns the exit code.

    0 after a signal (or when standard output is closed), 1 if the server
    refused a channel. ``token`` (a JWT) identifies the connection, for channels
    only some users may read.
    """
    stop = asyncio.Event()
    failed = False

    def status(text: str) -> None:
        print(f"pushwire: {text}", file=stderr, flush=True)

    def print_message(message: Message) -> None:
        try:
            stdout.write(orjson.dumps(message.to_json()).decode() + "\n")
            stdout.flush()
        except BrokenPipeError:  # the reader went away (`| head`): nothing left to do
            stop.set()

    def print_gap(gap: Gap) -> None:
        status(
            f"messages on {gap.channel} after {gap.last_id} were lost"
            f" (no longer in history); continuing from {gap.cursor}"
        )

    async def watch(subscription: Subscription) -> None:
        nonlocal failed
        try:
            await subscription
        except PushwireError as exc:
            status(f"cannot subscribe to {subscription.channel}: {exc}")
            failed = True
            stop.set()
        else:
            status(f"subscribed to {subscription.channel}")

    # The client's own reports (connected, lost, retrying) are the status lines.
    client_logger = logging.getLogger("pushwire.client")
    handler = logging.StreamHandler(stderr)
    handler.setFormatter(logging.Formatter("pushwire: %(message)s"))
    client_logger.addHandler(handler)
    previous_level = client_logger.level
    client_logger.setLevel(logging.INFO)
    loop = asyncio.get_running_loop()
    signals = (signal.SIGINT, signal.SIGTERM)
    for sig in signals:
        loop.add_signal_handler(sig, stop.set)
    try:
        async with Client(url, options, token=token) as client:
            subscriptions = [
                client.subscribe(channel, on_message=print_message, on_gap=print_gap)
                for channel in dict.fromkeys(channels)
            ]
            watchers = [asyncio.create_task(watch(s)) for s in subscriptions]
            await stop.wait()
            for task in watchers:
                task.cancel()
            await asyncio.gather(*watchers, return_exceptions=True)
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)
        client_logger.removeHandler(handler)
        client_logger.setLevel(previous_level)
    return 1 if failed else 0
