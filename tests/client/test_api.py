"""The backend API client, blocking and asyncio, against a real server."""

from __future__ import annotations

import pytest

from pushwire.client import (
    ApiClient,
    AsyncApiClient,
    ChannelInfo,
    Client,
    Message,
    PublishResult,
    UnreachableError,
)
from pushwire.errors import BadRequestError, InvalidChannelError, UnauthorizedError, UsageError
from tests.server_process import free_port

from .conftest import API_KEY, ServerLauncher, fast_options

SHORT_HISTORY = {"PUSHWIRE_CHANNELS": '[{"prefix": "short:", "history_size": 2}]'}


def test_publish_broadcast_and_history_with_the_blocking_client(
    launch_server: ServerLauncher,
) -> None:
    server = launch_server()
    with ApiClient(server.url, API_KEY) as api:
        first = api.publish("news", {"n": 1}, event="headline")
        results = api.broadcast(["news", "sports"], 2)
        newest = api.history("news")
        since_first = api.history("news", since=first.id)
        last_one = api.history("news", limit=1)

    assert first.channel == "news"
    assert [result.channel for result in results] == ["news", "sports"]
    assert all(isinstance(result, PublishResult) for result in results)
    assert newest.messages == (
        Message("news", first.id, {"n": 1}, "headline"),
        Message("news", results[0].id, 2),
    )
    assert newest.cursor == results[0].id
    assert since_first.messages == (Message("news", results[0].id, 2),)
    assert since_first.gap is False
    assert last_one.messages == newest.messages[1:]


def test_history_reports_a_gap_when_messages_were_trimmed(launch_server: ServerLauncher) -> None:
    server = launch_server(env=SHORT_HISTORY)
    with ApiClient(server.url, API_KEY) as api:
        first = api.publish("short:feed", 0)
        for n in range(1, 5):
            api.publish("short:feed", n)

        history = api.history("short:feed", since=first.id)

    assert history.gap is True
    assert [m.data for m in history.messages] == [3, 4]


def test_a_wrong_key_raises_unauthorized_with_its_code(launch_server: ServerLauncher) -> None:
    server = launch_server()
    with ApiClient(server.url, "wrong-key") as api, pytest.raises(UnauthorizedError) as caught:
        api.publish("news", 1)

    assert caught.value.code == "unauthorized"
    assert caught.value.http_status == 401


def test_refusals_carry_the_server_code(launch_server: ServerLauncher) -> None:
    server = launch_server()
    with ApiClient(server.url, API_KEY) as api:
        with pytest.raises(InvalidChannelError) as invalid:
            api.publish("no spaces allowed", 1)
        with pytest.raises(BadRequestError) as bad_limit:
            api.history("news", limit=5000)

    assert invalid.value.code == "invalid_channel"
    assert bad_limit.value.code == "bad_request"


def test_the_key_and_url_come_from_the_environment(
    launch_server: ServerLauncher, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = launch_server()
    monkeypatch.setenv("PUSHWIRE_API_KEY", API_KEY)
    monkeypatch.setenv("PUSHWIRE_URL", server.url)

    with ApiClient() as api:
        assert api.publish("env", True).channel == "env"


def test_no_key_at_all_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PUSHWIRE_API_KEY", raising=False)

    with pytest.raises(UsageError, match="PUSHWIRE_API_KEY"):
        ApiClient("http://127.0.0.1:1")


def test_misuse_is_caught_before_sending(launch_server: ServerLauncher) -> None:
    server = launch_server()
    with ApiClient(server.url, API_KEY) as api:
        with pytest.raises(UsageError):
            api.broadcast("news", 1)  # a string is not a list of channels
        with pytest.raises(UsageError):
            api.publish("news", object())


def test_an_unreachable_server_raises_unreachable() -> None:
    with (
        ApiClient(f"http://127.0.0.1:{free_port()}", API_KEY) as api,
        pytest.raises(UnreachableError),
    ):
        api.channels()


async def test_the_asyncio_client_covers_the_same_api(launch_server: ServerLauncher) -> None:
    server = launch_server()
    async with (
        AsyncApiClient(server.url, API_KEY) as api,
        Client(server.url, fast_options()) as client,
    ):
        await client.subscribe("watched")
        await client.subscribe("also-watched")
        published = await api.publish("watched", [1, 2, 3])
        results = await api.broadcast(["watched", "elsewhere"], "both", event="b")
        history = await api.history("watched", since=published.id)
        channels = await api.channels()

    assert [m.data for m in history.messages] == ["both"]
    assert results[1].channel == "elsewhere"
    assert sorted(channels, key=lambda info: info.channel) == [
        ChannelInfo("also-watched", 1),
        ChannelInfo("watched", 1),
    ]


async def test_the_asyncio_client_raises_the_same_errors(launch_server: ServerLauncher) -> None:
    server = launch_server()
    async with AsyncApiClient(server.url, "wrong-key") as api:
        with pytest.raises(UnauthorizedError) as caught:
            await api.history("news")

    assert caught.value.code == "unauthorized"
    async with AsyncApiClient(f"http://127.0.0.1:{free_port()}", API_KEY) as nowhere:
        with pytest.raises(UnreachableError):
            await nowhere.publish("news", 1)
