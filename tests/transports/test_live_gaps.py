"""Live gaps end to end: a broker loses a publication that history no longer holds.

Every transport must say so in its own way (``gap`` frame, ``pushwire.gap`` event,
``gaps`` in a poll answer) and carry on with what follows, in order. The server is
real; its broker is the embedded one, with one delivery to the node dropped, as
Redis pub/sub may drop one.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import orjson
import pytest
from httpx_sse import aconnect_sse
from websockets.asyncio.client import connect

from pushwire import ChannelRule, Config, Server
from pushwire.core.history import Publication
from tests.conftest import API_KEY, recv_json, subscriber_count, ws_url
from tests.relaying_broker import RelayingBroker
from tests.waiting import wait_until


class DroppingBroker(RelayingBroker):
    """The embedded broker, except that chosen offsets never reach the node."""

    def __init__(self, drop_offsets: set[int]) -> None:
        super().__init__()
        self._drop = drop_offsets

    def relay(self, publication: Publication) -> None:
        if publication.position.offset not in self._drop:
            self.deliver(publication)


@pytest.fixture
async def lossy_server() -> AsyncIterator[Server]:
    """Offset 2 of every channel is lost in transit; history keeps only the newest one."""
    config = Config(
        port=0, api_key=API_KEY, history="memory", channels=(ChannelRule(history_size=1),)
    )
    server = Server(config, broker=DroppingBroker({2}))
    await server.start()
    yield server
    await server.stop()


async def _publish_three(server: Server, channel: str) -> list[str]:
    await wait_until(lambda: subscriber_count(server, channel), message="the subscriber")
    return [(await server.publish(channel, n)).position.cursor for n in (1, 2, 3)]


async def test_websocket_subscribers_get_a_gap_frame_then_what_follows(
    lossy_server: Server,
) -> None:
    async with connect(ws_url(lossy_server) + "?channel=news") as ws:
        await recv_json(ws)  # subscribed
        one, two, three = await _publish_three(lossy_server, "news")

        frames = [await recv_json(ws) for _ in range(3)]

    assert frames == [
        {"type": "message", "channel": "news", "id": one, "data": 1},
        {"type": "gap", "channel": "news", "cursor": two},
        {"type": "message", "channel": "news", "id": three, "data": 3},
    ]


async def test_sse_streams_get_a_gap_event_mid_stream(lossy_server: Server) -> None:
    async with httpx.AsyncClient(base_url=lossy_server.url, timeout=10) as http:
        events = []

        async def read() -> None:
            async with aconnect_sse(http, "GET", "/sse?channel=news") as source:
                async for event in source.aiter_sse():
                    if event.data:
                        events.append(event)
                        if len(events) == 3:
                            return

        reader = asyncio.create_task(read())
        one, two, three = await _publish_three(lossy_server, "news")
        await asyncio.wait_for(reader, 5)

    assert [(e.event, e.id) for e in events] == [
        ("message", one),
        ("pushwire.gap", two),
        ("message", three),
    ]
    assert orjson.loads(events[1].data) == {"channel": "news", "cursor": two, "recovered": False}


async def test_a_long_poll_answer_names_the_gap(lossy_server: Server) -> None:
    async with httpx.AsyncClient(base_url=lossy_server.url, timeout=10) as http:
        first = asyncio.create_task(http.get("/poll?channel=news&timeout=10"))
        await wait_until(lambda: subscriber_count(lossy_server, "news"), message="the poll")
        one = (await lossy_server.publish("news", 1)).position.cursor
        answer = (await asyncio.wait_for(first, 5)).json()
        assert answer == {
            "messages": [{"channel": "news", "id": one, "data": 1}],
            "cursor": one,
        }
        second = asyncio.create_task(http.get(f"/poll?channel=news&timeout=10&cursor={one}"))
        await wait_until(lambda: subscriber_count(lossy_server, "news"), message="the poll")
        await lossy_server.publish("news", 2)  # lost in transit
        three = (await lossy_server.publish("news", 3)).position.cursor

        answer = (await asyncio.wait_for(second, 5)).json()

    assert answer == {
        "messages": [{"channel": "news", "id": three, "data": 3}],
        "cursor": three,
        "gaps": ["news"],
    }
