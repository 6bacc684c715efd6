"""Client against a real server: subscribe, publish, both delivery styles, errors."""

from __future__ import annotations

import asyncio

import pytest

from pushwire.client import (
    AsyncApiClient,
    Backoff,
    Client,
    Gap,
    Message,
    PublishResult,
    Subscription,
    UnreachableError,
)
from pushwire.errors import InvalidChannelError, PermissionDeniedError, UsageError
from tests.server_process import free_port
from tests.waiting import wait_until

from .conftest import API_KEY, ServerLauncher, fast_options

TRANSPORTS = ["websocket", "sse"]


async def take(
    subscription: Subscription, count: int, timeout_seconds: float = 5.0
) -> list[Message | Gap]:
    """The next ``count`` items of a subscription's iterator (fewer if it ends)."""
    items: list[Message | Gap] = []
    async with asyncio.timeout(timeout_seconds):
        async for item in subscription:
            items.append(item)
            if len(items) == count:
                break
    return items


def data_of(items: list[Message | Gap]) -> list[object]:
    assert all(isinstance(item, Message) for item in items), items
    return [item.data for item in items if isinstance(item, Message)]


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_published_messages_arrive_in_order_through_the_iterator(
    launch_server: ServerLauncher, transport: str
) -> None:
    server = launch_server()
    async with (
        Client(server.url, fast_options(transports=(transport,))) as client,
        AsyncApiClient(server.url, API_KEY) as api,
    ):
        subscription = await client.subscribe("news")
        sent = [await api.publish("news", {"n": n}, event="tick" if n else None) for n in range(5)]

        items = await take(subscription, 5)

        assert client.transport == transport
        assert items == [
            Message("news", result.id, {"n": n}, "tick" if n else None)
            for n, result in enumerate(sent)
        ]
        assert subscription.cursor == sent[-1].id


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_callbacks_receive_every_message_in_order(
    launch_server: ServerLauncher, transport: str
) -> None:
    server = launch_server()
    plain: list[Message] = []
    awaited: list[Message] = []

    async def slow_handler(message: Message) -> None:
        await asyncio.sleep(0.001)  # a callback that awaits does not reorder anything
        awaited.append(message)

    async with (
        Client(server.url, fast_options(transports=(transport,))) as client,
        AsyncApiClient(server.url, API_KEY) as api,
    ):
        await client.subscribe("a", on_message=plain.append)
        await client.subscribe("b", on_message=slow_handler)
        for n in range(20):
            await api.broadcast(["a", "b"], n)

        await wait_until(
            lambda: len(plain) == len(awaited) == 20, timeout_seconds=10, message="20 messages each"
        )

    assert [m.data for m in plain] == list(range(20))
    assert [m.data for m in awaited] == list(range(20))


async def test_a_failing_callback_is_logged_and_delivery_goes_on(
    launch_server: ServerLauncher, caplog: pytest.LogCaptureFixture
) -> None:
    server = launch_server()
    seen: list[int] = []

    def fragile(message: Message) -> None:
        seen.append(message.data)
        if message.data == 1:
            raise RuntimeError("application bug")

    async with (
        Client(server.url, fast_options()) as client,
        AsyncApiClient(server.url, API_KEY) as api,
    ):
        await client.subscribe("fragile", on_message=fragile)
        for n in range(3):
            await api.publish("fragile", n)

        await wait_until(lambda: len(seen) == 3, timeout_seconds=10, message="three messages")

    assert seen == [0, 1, 2]
    assert "callback for 'fragile' failed" in caplog.text


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_client_publish_returns_the_id_and_the_message_arrives(
    launch_server: ServerLauncher, transport: str
) -> None:
    server = launch_server()
    async with Client(server.url, fast_options(transports=(transport,))) as client:
        subscription = await client.subscribe("chat")

        result = await client.publish("chat", {"text": "hi"}, event="said")

        assert isinstance(result, PublishResult)
        assert result.channel == "chat"
        assert await take(subscription, 1) == [Message("chat", result.id, {"text": "hi"}, "said")]


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_refused_publish_raises_the_server_error_code(
    launch_server: ServerLauncher, transport: str
) -> None:
    server = launch_server(env={"PUSHWIRE_CHANNELS": '[{"prefix": "ro:", "publish": "none"}]'})
    async with Client(server.url, fast_options(transports=(transport,))) as client:
        with pytest.raises(PermissionDeniedError) as caught:
            await client.publish("ro:news", 1)

        assert caught.value.code == "permission_denied"
        # The connection survives a refused request.
        assert (await client.publish("rw:news", 2)).channel == "rw:news"


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_an_invalid_channel_fails_its_subscription_only(
    launch_server: ServerLauncher, transport: str
) -> None:
    server = launch_server()
    async with Client(server.url, fast_options(transports=(transport,))) as client:
        good = client.subscribe("good")
        bad = client.subscribe("not a channel")

        with pytest.raises(InvalidChannelError) as caught:
            await bad
        with pytest.raises(InvalidChannelError):
            await take(bad, 1)
        await good

        assert caught.value.code == "invalid_channel"
        assert bad.is_ended
        assert not good.is_ended


async def test_unsubscribing_ends_the_iterator_and_stops_delivery(
    launch_server: ServerLauncher,
) -> None:
    server = launch_server()
    async with (
        Client(server.url, fast_options()) as client,
        AsyncApiClient(server.url, API_KEY) as api,
    ):
        subscription = await client.subscribe("topic")
        await api.publish("topic", 1)
        assert data_of(await take(subscription, 1)) == [1]

        await subscription.unsubscribe()
        await api.publish("topic", 2)

        assert await take(subscription, 1) == []
        again = await client.subscribe("topic")  # the channel is free again
        await api.publish("topic", 3)
        assert data_of(await take(again, 1)) == [3]


async def test_a_stored_cursor_resumes_right_after_it(launch_server: ServerLauncher) -> None:
    server = launch_server()
    async with AsyncApiClient(server.url, API_KEY) as api:
        ids = [(await api.publish("log", n)).id for n in range(5)]
        async with Client(server.url, fast_options()) as client:
            subscription = client.subscribe("log", cursor=ids[1])

            items = await take(subscription, 3)

    assert data_of(items) == [2, 3, 4]


async def test_an_unknown_old_cursor_starts_with_a_gap(launch_server: ServerLauncher) -> None:
    server = launch_server()
    async with AsyncApiClient(server.url, API_KEY) as api:
        await api.publish("log", 0)
        async with Client(server.url, fast_options()) as client:
            # A well-formed cursor from an epoch this server never had.
            subscription = client.subscribe("log", cursor="0badc0de-7")
            await subscription
            result = await api.publish("log", 1)

            items = await take(subscription, 2)

    gap = items[0]
    assert isinstance(gap, Gap)
    assert (gap.channel, gap.last_id) == ("log", "0badc0de-7")
    assert items[1] == Message("log", result.id, 1)


async def test_closing_the_client_ends_every_iterator(launch_server: ServerLauncher) -> None:
    server = launch_server()
    client = Client(server.url, fast_options())
    subscription = await client.subscribe("x")
    reader = asyncio.create_task(take(subscription, 10))

    await client.close()

    assert await asyncio.wait_for(reader, 5) == []
    with pytest.raises(UsageError):
        client.subscribe("y")


async def test_subscribing_twice_to_one_channel_is_a_usage_error(
    launch_server: ServerLauncher,
) -> None:
    server = launch_server()
    async with Client(server.url, fast_options()) as client:
        client.subscribe("once")

        with pytest.raises(UsageError):
            client.subscribe("once")


async def test_the_client_gives_up_after_the_attempt_limit() -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"
    options = fast_options(backoff=Backoff(0.01, 0.02, max_attempts=3))
    async with Client(nowhere, options) as client:
        subscription = client.subscribe("void")

        with pytest.raises(UnreachableError):
            await asyncio.wait_for(client.wait_connected(), 10)
        with pytest.raises(UnreachableError):
            await take(subscription, 1)
        with pytest.raises(UnreachableError):
            await client.publish("void", 1)
