"""/sse end to end: httpx-sse against a real server, resuming with Last-Event-ID."""

from __future__ import annotations

import asyncio

import httpx
import orjson
from httpx_sse import ServerSentEvent, aconnect_sse

from pushwire import ChannelRule, Server
from tests.conftest import ServerFactory, api_publish, subscriber_count
from tests.waiting import wait_until


async def _events(
    http: httpx.AsyncClient, url: str, count: int, headers: dict[str, str] | None = None
) -> list[ServerSentEvent]:
    """The first ``count`` dispatched events (id-only events have no data and are skipped)."""
    events: list[ServerSentEvent] = []
    async with aconnect_sse(http, "GET", url, headers=dict(headers or {})) as source:
        async for event in source.aiter_sse():
            if event.data:
                events.append(event)
                if len(events) == count:
                    break
    return events


async def _collect(
    http: httpx.AsyncClient, url: str, count: int, headers: dict[str, str] | None = None
) -> asyncio.Task[list[ServerSentEvent]]:
    """Start reading in the background; returns once the stream is open."""
    task = asyncio.create_task(_events(http, url, count, headers))
    await _wait_for_stream(http)
    return task


async def _wait_for_stream(http: httpx.AsyncClient) -> None:
    async def opened() -> bool:
        channels = await http.get("/api/channels", headers={"X-API-Key": "test-key"})
        return bool(channels.json()["channels"])

    await wait_until(opened, timeout_seconds=2, message="the stream to open")


async def test_events_carry_id_event_and_the_message_object(
    server: Server, http: httpx.AsyncClient
) -> None:
    reader = await _collect(http, "/sse?channel=news", 2)
    plain_id = await api_publish(http, "news", {"a": 1})
    named_id = await api_publish(http, "news", "x", event="breaking")

    plain, named = await asyncio.wait_for(reader, 5)

    assert plain.id == plain_id
    assert plain.event == "message"
    assert orjson.loads(plain.data) == {"channel": "news", "id": plain_id, "data": {"a": 1}}
    assert named.id == named_id
    assert named.event == "breaking"
    assert orjson.loads(named.data)["event"] == "breaking"


async def test_stream_opens_with_retry_and_an_id_only_event(server: Server) -> None:
    async with (
        httpx.AsyncClient(base_url=server.url) as http,
        http.stream("GET", "/sse?channel=a") as response,
    ):
        opening = b""
        async for chunk in response.aiter_bytes():
            opening += chunk
            if opening.count(b"\n\n") >= 2:
                break

    assert response.headers["content-type"].startswith("text/event-stream")
    assert opening.startswith(b"retry: 2000\n\nid: ")


async def test_last_event_id_resumes_every_channel_of_the_stream(
    server: Server, http: httpx.AsyncClient
) -> None:
    url = "/sse?channel=b&channel=a"
    reader = await _collect(http, url, 1)
    await api_publish(http, "a", "a1")
    (first,) = await asyncio.wait_for(reader, 5)
    # Disconnected: these are missed, on both channels, in this order.
    await api_publish(http, "b", "b1")
    await api_publish(http, "a", "a2")
    await api_publish(http, "b", "b2")

    resumed = await asyncio.wait_for(_events(http, url, 3, headers={"Last-Event-ID": first.id}), 5)

    assert [orjson.loads(e.data)["data"] for e in resumed] == ["b1", "a2", "b2"]
    assert "." in resumed[-1].id  # one stream cursor covering both channels


async def test_last_event_id_query_parameter_works_like_the_header(
    server: Server, http: httpx.AsyncClient
) -> None:
    first = await api_publish(http, "q", 1)
    await api_publish(http, "q", 2)

    (event,) = await asyncio.wait_for(_events(http, f"/sse?channel=q&lastEventId={first}", 1), 5)

    assert orjson.loads(event.data)["data"] == 2


async def test_a_lost_stretch_of_history_is_an_explicit_gap_event(
    make_server: ServerFactory,
) -> None:
    server = await make_server(channels=(ChannelRule(prefix="", history_size=1),))
    async with httpx.AsyncClient(base_url=server.url) as http:
        first = await api_publish(http, "g", 1)
        await api_publish(http, "g", 2)
        await api_publish(http, "g", 3)

        reader = asyncio.create_task(
            _events(http, "/sse?channel=g", 2, headers={"Last-Event-ID": first})
        )
        await _wait_for_stream(http)
        live_id = await api_publish(http, "g", 4)
        gap, live = await asyncio.wait_for(reader, 5)

    assert gap.event == "pushwire.gap"
    assert orjson.loads(gap.data) == {"channel": "g", "cursor": gap.id, "recovered": False}
    assert gap.id  # moves the browser's cursor on, so the gap is reported once
    assert live.id == live_id


async def test_keep_alive_comments_are_sent(make_server: ServerFactory) -> None:
    server = await make_server(sse_ping_interval_seconds=0.05)
    async with (
        httpx.AsyncClient(base_url=server.url) as http,
        http.stream("GET", "/sse?channel=k") as response,
    ):
        received = b""
        async for chunk in response.aiter_bytes():
            received += chunk
            if b": ping\n\n" in received:
                break

    assert b": ping\n\n" in received


async def test_cors_is_granted_only_to_allowed_origins(make_server: ServerFactory) -> None:
    server = await make_server(allowed_origins=("https://app.example",))
    async with httpx.AsyncClient(base_url=server.url) as http:
        allowed = await _head(http, "https://app.example")
        refused = await http.get("/sse?channel=c", headers={"Origin": "https://evil.example"})

    assert allowed.get("access-control-allow-origin") == "https://app.example"
    assert refused.status_code == 403
    assert refused.json()["error"] == "origin_not_allowed"
    assert "access-control-allow-origin" not in refused.headers


async def _head(http: httpx.AsyncClient, origin: str) -> httpx.Headers:
    async with http.stream("GET", "/sse?channel=c", headers={"Origin": origin}) as response:
        return response.headers


async def test_bad_requests_get_json_errors_before_the_stream_starts(
    server: Server, http: httpx.AsyncClient
) -> None:
    cases = {
        "/sse": "bad_request",
        "/sse?channel=no%20spaces": "invalid_channel",
        "/sse?channel=a&lastEventId=garbage": "invalid_cursor",
        "/sse?channel=a&channel=b&lastEventId=abc-1": "invalid_cursor",
    }
    for url, code in cases.items():
        response = await http.get(url)
        assert response.status_code == 400, url
        assert response.json()["error"] == code, url


async def test_closed_streams_leave_nothing_behind(server: Server, http: httpx.AsyncClient) -> None:
    reader = await _collect(http, "/sse?channel=gone", 1)
    await api_publish(http, "gone", 1)
    await asyncio.wait_for(reader, 5)

    await wait_until(
        lambda: server.node.hub.channel("gone") is None,
        timeout_seconds=2,
        message="the channel to be forgotten",
    )

    assert server.node.hub.channel("gone") is None
    assert not server.sse_pinger.streams


async def test_a_stream_that_is_not_read_is_cut_off_and_others_keep_everything(
    make_server: ServerFactory,
) -> None:
    server = await make_server(max_buffer_bytes=64 * 1024)
    # A raw socket that never reads: the slow consumer.
    _reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.transport.pause_reading()  # type: ignore[attr-defined]
    writer.write(b"GET /sse?channel=flood HTTP/1.1\r\nHost: x\r\n\r\n")
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        await wait_until(
            lambda: subscriber_count(server, "flood"),
            timeout_seconds=2,
            message="the raw stream to subscribe",
        )
        reader_task = await _collect(http, "/sse?channel=flood", 400)
        await wait_until(
            lambda: subscriber_count(server, "flood") == 2,
            timeout_seconds=2,
            message="both streams subscribed",
        )
        for n in range(400):
            await server.publish("flood", {"n": n, "pad": "x" * 8000})
            await asyncio.sleep(0)
        events = await asyncio.wait_for(reader_task, 30)
    writer.close()

    assert subscriber_count(server, "flood") <= 1, "the stalled stream was never cut off"
    assert [orjson.loads(e.data)["data"]["n"] for e in events] == list(range(400))
