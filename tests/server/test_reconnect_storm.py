"""A reconnect storm: a server killed (SIGKILL) under hundreds of real Python clients.

Every client is a :class:`pushwire.client.Client` with its own reconnect logic (a
shorter back-off than the default, so the test stays short; the same code), all
subscribed to one channel that a backend publishes to steadily. The server dies
mid-stream and comes back on the same port and SQLite data directory; then every
client must hold exactly the committed stream, as history has it after the run:
nothing lost, nothing twice, nothing out of order, one epoch. Duplicate
suppression in the client is off, so a repeat the server sent would be seen.

``python -m bench storm`` is the same run at 10,000 clients, with figures.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pushwire.client import (
    AsyncApiClient,
    Backoff,
    Client,
    ClientOptions,
    ConnectionLostError,
    Gap,
    Message,
    RequestTimeoutError,
    UnreachableError,
)
from tests.conftest import API_KEY
from tests.server_process import ServerProcess
from tests.waiting import wait_until

CLIENTS = 300
CHANNEL = "storm"
#: Publications per second of the steady stream.
RATE = 50

Launch = Callable[..., ServerProcess]


@dataclass
class Subscriber:
    """What one client received, in order."""

    messages: list[Message] = field(default_factory=list)
    gaps: list[Gap] = field(default_factory=list)
    connects: int = 0

    def connected(self, transport: str) -> None:
        self.connects += 1


@dataclass
class SteadyPublisher:
    """Publishes 0, 1, 2, ... at ``RATE``; a number that got no answer is not retried.

    Only answered publications count as sent; one lost in the crash may or may not
    be in the stream, which history settles after the run.
    """

    api: AsyncApiClient
    acknowledged: dict[str, int] = field(default_factory=dict)  # id -> number
    attempts: int = 0
    failures: int = 0
    stopping: bool = False

    async def run(self) -> None:
        for number in range(100_000):
            if self.stopping:
                return
            self.attempts += 1
            try:
                result = await self.api.publish(CHANNEL, number)
            except (UnreachableError, ConnectionLostError, RequestTimeoutError):
                self.failures += 1
            else:
                self.acknowledged[result.id] = number
            await asyncio.sleep(1 / RATE)
        raise AssertionError("the publisher did not stop")


async def committed_stream(api: AsyncApiClient) -> list[Message]:
    """The channel's whole stream as history has it, oldest first."""
    first = await api.history(CHANNEL, limit=1)
    epoch = first.cursor.rpartition("-")[0]
    stream: list[Message] = []
    since = f"{epoch}-0"
    for _ in range(100):
        page = await api.history(CHANNEL, since=since, limit=1000)
        assert not page.gap
        if not page.messages:
            return stream
        stream.extend(page.messages)
        since = page.messages[-1].id
    raise AssertionError("history did not end")


async def test_every_client_ends_with_exactly_the_committed_stream(
    server_process: Launch, tmp_path: Path
) -> None:
    server = server_process("--data-dir", str(tmp_path / "data"))
    options = ClientOptions(
        transports=("websocket",),
        backoff=Backoff(min_delay_seconds=0.1, max_delay_seconds=2.0),
        duplicate_window=0,  # a repeat from the server must reach us
        connect_timeout_seconds=10.0,
    )
    subscribers = [Subscriber() for _ in range(CLIENTS)]
    clients = [Client(server.url, options, on_connect=s.connected) for s in subscribers]
    try:
        await asyncio.gather(
            *(
                client.subscribe(CHANNEL, on_message=s.messages.append, on_gap=s.gaps.append)
                for client, s in zip(clients, subscribers, strict=True)
            )
        )
        async with AsyncApiClient(server.url, API_KEY, timeout_seconds=2) as api:
            publisher = SteadyPublisher(api)
            publishing = asyncio.create_task(publisher.run())
            await wait_until(
                lambda: min(len(s.messages) for s in subscribers) >= 20,
                timeout_seconds=20,
                message="20 messages at every client before the crash",
            )

            server.kill()  # SIGKILL: every connection breaks at once, no goodbye
            await asyncio.sleep(0.5)
            server.spawn()  # same port, same data directory
            await server.wait_ready_async()

            await wait_until(
                lambda: all(s.connects >= 2 for s in subscribers),
                timeout_seconds=30,
                message=lambda: (
                    f"every client back; {sum(s.connects >= 2 for s in subscribers)} are"
                ),
            )
            acknowledged_at_return = len(publisher.acknowledged)
            await wait_until(
                lambda: len(publisher.acknowledged) >= acknowledged_at_return + 20,
                timeout_seconds=20,
                message="20 more publications after every client is back",
            )
            publisher.stopping = True
            await asyncio.wait_for(publishing, 10)

            stream = await committed_stream(api)
            await wait_until(
                lambda: all(len(s.messages) >= len(stream) for s in subscribers),
                timeout_seconds=20,
                message=lambda: (
                    f"every client at the top ({len(stream)}); the slowest has "
                    f"{min(len(s.messages) for s in subscribers)}"
                ),
            )
            # Anything still in flight would show up as an extra message.
            await asyncio.sleep(0.2)
            stream = await committed_stream(api)
    finally:
        await asyncio.gather(*(client.close() for client in clients))

    ids = [m.id for m in stream]
    epochs = {i.rpartition("-")[0] for i in ids}
    assert len(epochs) == 1  # the epoch survived the crash: recovery was possible
    assert [int(i.rpartition("-")[2]) for i in ids] == list(range(1, len(ids) + 1))
    in_stream = {m.id: m.data for m in stream}
    assert all(in_stream.get(i) == n for i, n in publisher.acknowledged.items())
    assert publisher.failures > 0  # the publisher did publish into the crash
    wrong = [k for k, s in enumerate(subscribers) if s.messages != stream]
    assert wrong == [], (
        f"{len(wrong)} clients differ from the committed stream, first: "
        f"{len(subscribers[wrong[0]].messages)} messages vs {len(stream)}"
    )
    assert all(s.gaps == [] for s in subscribers)
