"""Reconnecting and recovering: server crashes and restarts, lost history, a frozen server."""

from __future__ import annotations

import asyncio
import signal
from dataclasses import dataclass, field

import pytest

from pushwire.client import (
    AsyncApiClient,
    Client,
    ConnectionLostError,
    Gap,
    Message,
    RequestTimeoutError,
    UnreachableError,
)
from tests.waiting import wait_until

from .conftest import API_KEY, ServerLauncher, fast_options

TRANSPORTS = ["websocket", "sse"]


@dataclass
class Publisher:
    """Publishes 0, 1, 2, ... through the API, retrying each number until it is in.

    A request the server may have applied before dying (connection lost, timeout)
    is settled by reading history, so every number is published exactly once.
    """

    api: AsyncApiClient
    channel: str
    published: int = 0
    failures: int = 0  # failed requests, publishes and history reads alike
    stopping: bool = False
    ids: list[str] = field(default_factory=list)

    async def run(self) -> None:
        for _ in range(100_000):
            if self.stopping:
                return
            try:
                self.ids.append((await self.api.publish(self.channel, self.published)).id)
            except UnreachableError:  # nothing was sent: just try again
                self.failures += 1
                await asyncio.sleep(0.01)
                continue
            except (ConnectionLostError, RequestTimeoutError):
                self.failures += 1
                if not await self._was_published(self.published):
                    continue
            self.published += 1
        raise AssertionError("publisher loop did not stop")

    async def _was_published(self, number: int) -> bool:
        for _ in range(1000):
            try:
                history = await self.api.history(self.channel, limit=1)
            except (UnreachableError, ConnectionLostError, RequestTimeoutError):
                self.failures += 1
                await asyncio.sleep(0.01)
                continue
            last = history.messages[-1] if history.messages else None
            if last is not None and last.data == number:
                self.ids.append(last.id)
                return True
            return False
        raise AssertionError("history never became readable again")


@dataclass
class Events:
    connects: list[str] = field(default_factory=list)
    disconnects: list[str] = field(default_factory=list)


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("stop", ["crash", "shutdown"])
async def test_a_restart_mid_stream_loses_and_repeats_nothing(
    launch_server: ServerLauncher, transport: str, stop: str
) -> None:
    server = launch_server(persistent=True)
    events = Events()
    received: list[Message] = []
    gaps: list[Gap] = []
    options = fast_options(transports=(transport,))
    async with (
        AsyncApiClient(server.url, API_KEY, timeout_seconds=2) as api,
        Client(
            server.url,
            options,
            on_connect=events.connects.append,
            on_disconnect=events.disconnects.append,
        ) as client,
    ):
        await client.subscribe("numbers", on_message=received.append, on_gap=gaps.append)
        publisher = Publisher(api, "numbers")
        publishing = asyncio.create_task(publisher.run())

        # Before: the stream flows.
        await wait_until(
            lambda: len(received) >= 50,
            timeout_seconds=10,
            message="50 messages before the restart",
        )
        if stop == "crash":
            server.kill()  # SIGKILL: no goodbye, connections just break
        else:
            assert await server.terminate() == 0  # SIGTERM: WebSockets closed with 1001
        # During: the client has noticed, the publisher keeps failing and retrying.
        await wait_until(
            lambda: len(events.disconnects) >= 1, timeout_seconds=10, message="the client to notice"
        )
        failures_at_crash = publisher.failures
        await wait_until(
            lambda: publisher.failures >= failures_at_crash + 5,
            timeout_seconds=10,
            message="retries",
        )
        server.spawn()
        await server.wait_ready_async()
        # After: the publisher gets through again, the subscriber catches up.
        published_at_restart = publisher.published
        await wait_until(
            lambda: publisher.published >= published_at_restart + 50,
            timeout_seconds=10,
            message="50 more publishes",
        )
        publisher.stopping = True
        await asyncio.wait_for(publishing, 10)
        await wait_until(
            lambda: len(received) >= publisher.published,
            timeout_seconds=10,
            message="every message delivered",
        )
        history = await api.history("numbers", limit=1000)

    assert [m.data for m in received] == list(range(publisher.published))
    assert [m.id for m in received] == publisher.ids
    assert received == list(history.messages)
    assert len({m.id for m in received}) == len(received)
    assert gaps == []
    assert events.connects == [transport, transport]


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_history_lost_in_a_restart_is_reported_as_a_gap(
    launch_server: ServerLauncher, transport: str
) -> None:
    server = launch_server()  # history in memory: a restart starts a new epoch
    async with (
        AsyncApiClient(server.url, API_KEY) as api,
        Client(server.url, fast_options(transports=(transport,))) as client,
    ):
        subscription = await client.subscribe("volatile")
        before = [(await api.publish("volatile", n)).id for n in range(3)]
        items: list[Message | Gap] = []

        async def read() -> None:
            async for item in subscription:
                items.append(item)

        reader = asyncio.create_task(read())
        await wait_until(lambda: len(items) == 3, timeout_seconds=10, message="three messages")
        server.kill()
        server.spawn()
        await server.wait_ready_async()
        await wait_until(lambda: len(items) == 4, timeout_seconds=10, message="the gap notice")
        after = [(await api.publish("volatile", n)).id for n in (3, 4)]
        await wait_until(lambda: len(items) == 6, timeout_seconds=10, message="two more messages")
        await subscription.unsubscribe()
        await asyncio.wait_for(reader, 5)

    gap = items[3]
    assert isinstance(gap, Gap)
    assert gap.channel == "volatile"
    assert gap.last_id == before[-1]
    assert items[:3] == [Message("volatile", id_, n) for n, id_ in enumerate(before)]
    assert items[4:] == [Message("volatile", id_, n) for n, id_ in zip((3, 4), after, strict=True)]
    assert subscription.cursor == after[-1]


async def test_a_frozen_server_is_detected_by_the_heartbeat(
    launch_server: ServerLauncher,
) -> None:
    server = launch_server()
    events = Events()
    received: list[Message] = []
    options = fast_options(
        transports=("websocket",),
        ping_interval_seconds=0.1,
        pong_timeout_seconds=0.3,
        connect_timeout_seconds=0.3,
    )
    async with (
        AsyncApiClient(server.url, API_KEY) as api,
        Client(
            server.url,
            options,
            on_connect=events.connects.append,
            on_disconnect=events.disconnects.append,
        ) as client,
    ):
        await client.subscribe("beat", on_message=received.append)
        await api.publish("beat", 1)
        await wait_until(
            lambda: len(received) == 1, timeout_seconds=10, message="the first message"
        )

        # SIGSTOP: the TCP connection stays up, but nothing answers any more.
        server.send(signal.SIGSTOP)
        try:
            await wait_until(
                lambda: len(events.disconnects) == 1,
                timeout_seconds=10,
                message="the heartbeat to fail",
            )
        finally:
            server.send(signal.SIGCONT)
        await wait_until(
            lambda: len(events.connects) == 2, timeout_seconds=10, message="a new connection"
        )
        await api.publish("beat", 2)
        await wait_until(
            lambda: len(received) == 2, timeout_seconds=10, message="the second message"
        )

    assert "no pong" in events.disconnects[0]
    assert [m.data for m in received] == [1, 2]
