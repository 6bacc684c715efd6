"""Client tokens against a real server: presenting them, refreshing, being refused,
disconnected and unsubscribed by the backend. Tokens are minted by PyJWT itself."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import jwt
import pytest

from pushwire import ChannelRule, Server
from pushwire.client import (
    ApiClient,
    AsyncApiClient,
    Backoff,
    Client,
    DisconnectedError,
    Gap,
    Message,
    Publisher,
    Subscription,
)
from pushwire.errors import InvalidTokenError, TokenExpiredError
from tests.conftest import API_KEY, ServerFactory, subscriber_count
from tests.waiting import wait_until

from .conftest import API_KEY as PROCESS_API_KEY, ServerLauncher, fast_options

SECRET = "s" * 64
TRANSPORTS = ["websocket", "sse"]


def mint(user: str = "alice", *, ttl: float = 3600, key: str = SECRET) -> str:
    return jwt.encode({"sub": user, "exp": time.time() + ttl}, key, algorithm="HS256")


def tokens_from(*tokens: str) -> tuple[Callable[[], Awaitable[str]], list[str]]:
    """A get_token handing out ``tokens`` in turn (the last for ever), and what it handed out."""
    given: list[str] = []

    async def get_token() -> str:
        given.append(tokens[min(len(given), len(tokens) - 1)])
        return given[-1]

    return get_token, given


async def take(subscription: Subscription, count: int) -> list[Message | Gap]:
    """Up to ``count`` items of the iterator (fewer if it ends), within 10 s."""
    items: list[Message | Gap] = []
    async with asyncio.timeout(10):
        async for item in subscription:
            items.append(item)
            if len(items) == count:
                break
    return items


@pytest.fixture
async def server(make_server: ServerFactory) -> Server:
    return await make_server(
        token_secret=SECRET,
        token_refresh_timeout_seconds=5,
        channels=(
            ChannelRule(prefix="members:", subscribe="authenticated", publish="authenticated"),
        ),
    )


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_static_token_opens_channels_for_authenticated_users_only(
    server: Server, transport: str
) -> None:
    options = fast_options(transports=(transport,))
    async with Client(server.url, options, token=mint()) as client:
        subscription = await client.subscribe("members:room")
        # Over SSE this goes by POST /publish, with the token as Bearer.
        published = await client.publish("members:room", {"n": 1})

        items = await take(subscription, 1)

        assert client.transport == transport
    # The server names the publisher from its token (the message's "from").
    assert items == [
        Message("members:room", published.id, {"n": 1}, publisher=Publisher("alice", None))
    ]


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_get_token_is_called_before_connecting(server: Server, transport: str) -> None:
    get_token, given = tokens_from(mint())
    async with Client(
        server.url, fast_options(transports=(transport,)), get_token=get_token
    ) as client:
        subscription = await client.subscribe("members:room")
        await server.publish("members:room", "hello")

        items = await take(subscription, 1)

    assert [item.data for item in items if isinstance(item, Message)] == ["hello"]
    assert len(given) == 1


async def test_get_token_answers_the_servers_refresh_and_the_connection_stays(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "pushwire.client")
    get_token, given = tokens_from(mint(ttl=1.5), mint())
    disconnects: list[str] = []
    options = fast_options(transports=("websocket",))
    async with Client(
        server.url, options, get_token=get_token, on_disconnect=disconnects.append
    ) as client:
        subscription = await client.subscribe("members:room")

        # The server asks at expiry, and answers "refreshed" only to a token it accepts.
        await wait_until(lambda: "token refreshed" in caplog.text, timeout_seconds=10)
        await server.publish("members:room", "after the refresh")
        items = await take(subscription, 1)

    assert [item.data for item in items if isinstance(item, Message)] == ["after the refresh"]
    assert len(given) == 2
    assert disconnects == []


async def test_a_refused_refresh_token_closes_with_4401_and_the_client_reconnects(
    server: Server,
) -> None:
    get_token, given = tokens_from(mint(ttl=1), mint(key="another secret " * 5), mint())
    connects: list[str] = []
    disconnects: list[str] = []
    async with Client(
        server.url,
        fast_options(transports=("websocket",)),
        get_token=get_token,
        on_connect=connects.append,
        on_disconnect=disconnects.append,
    ) as client:
        subscription = await client.subscribe("members:room")
        await wait_until(lambda: len(connects) == 2, timeout_seconds=10, message="a reconnect")
        await subscription
        await server.publish("members:room", "back")

        items = await take(subscription, 1)

    assert [item.data for item in items if isinstance(item, Message)] == ["back"]
    assert len(given) == 3
    # Refused as the refresh, not expired for want of one.
    assert "4401 token refused" in disconnects[0]


async def test_a_static_token_that_expires_stops_the_client_with_4401(
    make_server: ServerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    server = await make_server(token_secret=SECRET, token_refresh_timeout_seconds=0.3)
    async with Client(
        server.url, fast_options(transports=("websocket",)), token=mint(ttl=1)
    ) as client:
        subscription = await client.subscribe("room")

        with pytest.raises(DisconnectedError) as stopped:
            await asyncio.wait_for(client.wait_closed(), 10)

        with pytest.raises(DisconnectedError):
            await take(subscription, 1)
    assert stopped.value.code == 4401
    assert "no get_token" in caplog.text


async def test_a_token_expiring_on_an_sse_stream_is_replaced_through_get_token(
    make_server: ServerFactory,
) -> None:
    server = await make_server(token_secret=SECRET, token_refresh_timeout_seconds=0.3)
    get_token, given = tokens_from(mint(ttl=1), mint())
    disconnects: list[str] = []
    async with Client(
        server.url,
        fast_options(transports=("sse",)),
        get_token=get_token,
        on_disconnect=disconnects.append,
    ) as client:
        subscription = await client.subscribe("room")
        await wait_until(lambda: len(given) == 2, timeout_seconds=10, message="a second token")
        await wait_until(lambda: subscriber_count(server, "room") == 1, message="resubscribed")
        await server.publish("room", "still here")

        items = await take(subscription, 1)

    assert [item.data for item in items if isinstance(item, Message)] == ["still here"]
    assert "4401" in disconnects[0]


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_refused_token_at_connect_is_replaced_through_get_token(
    server: Server, transport: str
) -> None:
    get_token, given = tokens_from(mint(ttl=-60), mint(key="another secret " * 5), mint())
    async with Client(
        server.url, fast_options(transports=(transport,)), get_token=get_token
    ) as client:
        subscription = await client.subscribe("members:room")
        await subscription
        await server.publish("members:room", "in")

        items = await take(subscription, 1)

        assert client.transport == transport
    assert [item.data for item in items if isinstance(item, Message)] == ["in"]
    assert len(given) == 3


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize(
    ("token", "error"),
    [(mint(ttl=-60), TokenExpiredError), (mint(key="another secret " * 5), InvalidTokenError)],
)
async def test_a_refused_static_token_stops_the_client_with_the_servers_code(
    server: Server, transport: str, token: str, error: type[InvalidTokenError]
) -> None:
    connects: list[str] = []
    async with Client(
        server.url, fast_options(transports=(transport,)), token=token, on_connect=connects.append
    ) as client:
        subscription = client.subscribe("members:room")

        with pytest.raises(error) as stopped:
            await asyncio.wait_for(client.wait_closed(), 10)

        with pytest.raises(error):
            await subscription
    assert stopped.value.code == error.code
    assert stopped.value.http_status == 401


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_token_refused_again_and_again_counts_as_failed_attempts(
    server: Server, transport: str
) -> None:
    get_token, given = tokens_from(mint(ttl=-60))
    options = fast_options(
        transports=(transport,),
        backoff=Backoff(min_delay_seconds=0.01, max_delay_seconds=0.05, max_attempts=3),
    )
    async with Client(server.url, options, get_token=get_token) as client:
        client.subscribe("members:room")

        with pytest.raises(TokenExpiredError):
            await asyncio.wait_for(client.wait_closed(), 10)

    assert len(given) == 3


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_api_disconnect_stops_the_client_for_good(server: Server, transport: str) -> None:
    connects: list[str] = []
    async with (
        Client(
            server.url,
            fast_options(transports=(transport,)),
            token=mint("alice"),
            on_connect=connects.append,
        ) as client,
        AsyncApiClient(server.url, API_KEY) as api,
    ):
        subscription = await client.subscribe("members:room")

        disconnected = await api.disconnect("alice")

        with pytest.raises(DisconnectedError) as stopped:
            await asyncio.wait_for(client.wait_closed(), 10)
        with pytest.raises(DisconnectedError):
            await take(subscription, 1)
        assert await api.disconnect("alice") == 0
        assert connects == [transport]
    assert disconnected == 1
    assert (stopped.value.code, stopped.value.reason) == (4000, "disconnected by server")


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_api_unsubscribe_ends_that_subscription_only(server: Server, transport: str) -> None:
    ended: list[str] = []
    received: list[Message] = []
    async with (
        Client(server.url, fast_options(transports=(transport,)), token=mint("alice")) as client,
        AsyncApiClient(server.url, API_KEY) as api,
    ):
        taken = await client.subscribe("members:taken")
        kept = await client.subscribe(
            "members:kept", on_message=received.append, on_unsubscribed=ended.append
        )

        # The blocking client, in a thread: the server runs on this event loop.
        with ApiClient(server.url, API_KEY) as blocking:
            unsubscribed = await asyncio.to_thread(blocking.unsubscribe, "alice", "members:taken")
        items = await take(taken, 1)
        await server.publish("members:kept", "still")
        await wait_until(lambda: len(received) == 1, message="the message on the kept channel")

        assert taken.ended_by_server
        assert not kept.is_ended
        await api.unsubscribe("alice", "members:kept")
        await wait_until(lambda: ended == ["members:kept"], message="on_unsubscribed")
        assert kept.ended_by_server
    assert unsubscribed == 1
    assert items == []


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_after_a_server_restart_get_token_is_called_again_and_unsubscribed_stays_gone(
    launch_server: ServerLauncher, transport: str
) -> None:
    server = launch_server(persistent=True, env={"PUSHWIRE_TOKEN_SECRET": SECRET})
    get_token, given = tokens_from(mint("alice"))
    connects: list[str] = []
    received: list[Any] = []
    async with (
        Client(
            server.url,
            fast_options(transports=(transport,)),
            get_token=get_token,
            on_connect=connects.append,
        ) as client,
        AsyncApiClient(server.url, PROCESS_API_KEY) as api,
    ):
        taken = await client.subscribe("taken")
        await client.subscribe("kept", on_message=received.append)
        assert await api.unsubscribe("alice", "taken") == 1
        assert await take(taken, 1) == []

        server.stop()
        server.spawn()
        await server.wait_ready_async()
        await wait_until(lambda: len(connects) == 2, timeout_seconds=15, message="a reconnect")
        await wait_until(
            lambda: _subscribed_channels(api), timeout_seconds=10, message="kept resubscribed"
        )
        await api.publish("kept", "after the restart")
        await wait_until(lambda: len(received) == 1, message="the message after the restart")

        assert await _subscribed_channels(api) == ["kept"]
    # Once to connect, then once for every attempt while the server was away.
    assert len(given) >= 2
    assert [message.data for message in received] == ["after the restart"]


async def _subscribed_channels(api: AsyncApiClient) -> list[str]:
    return sorted(info.channel for info in await api.channels())
