"""/poll: long and short polling with cursors end to end over httpx, and one waiter below it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx
import orjson

from pushwire import ChannelRule, Server
from pushwire.core.history import Publication, StreamPosition
from pushwire.core.hub import Hub
from pushwire.core.identity import ANONYMOUS, Identity
from pushwire.testing import FakeClock
from pushwire.transports.longpoll import POLL_ANSWERS, LongPollWaiter, PollPresence
from tests.conftest import ServerFactory, api_publish, subscriber_count
from tests.waiting import wait_until


async def _wait_for_waiter(server: Server, channel: str) -> None:
    await wait_until(
        lambda: subscriber_count(server, channel),
        timeout_seconds=2,
        message=f"a poll waiting on {channel!r}",
    )


async def test_long_poll_answers_as_soon_as_a_publication_arrives(
    server: Server, http: httpx.AsyncClient
) -> None:
    poll = asyncio.create_task(http.get("/poll?channel=news&timeout=30"))
    await _wait_for_waiter(server, "news")

    published = await api_publish(http, "news", {"n": 1})
    response = await asyncio.wait_for(poll, 5)

    assert response.status_code == 200
    assert response.json() == {
        "messages": [{"channel": "news", "id": published, "data": {"n": 1}}],
        "cursor": published,
    }


async def test_polling_with_the_returned_cursor_misses_nothing(
    server: Server, http: httpx.AsyncClient
) -> None:
    start = (await http.get("/poll?channel=c&timeout=0")).json()
    sent = [await api_publish(http, "c", n) for n in range(5)]

    first = (await http.get(f"/poll?channel=c&cursor={start['cursor']}&timeout=0")).json()
    more = [await api_publish(http, "c", n) for n in range(5, 7)]
    second = (await http.get(f"/poll?channel=c&cursor={first['cursor']}&timeout=5")).json()

    assert start["messages"] == []
    assert [m["id"] for m in first["messages"]] == sent
    assert [m["id"] for m in second["messages"]] == more


async def test_timeout_answers_empty_with_the_same_cursor(
    server: Server, http: httpx.AsyncClient
) -> None:
    cursor = await api_publish(http, "quiet", 1)

    response = await http.get(f"/poll?channel=quiet&cursor={cursor}&timeout=0.2")

    assert response.json() == {"messages": [], "cursor": cursor}
    assert server.node.hub.channel("quiet") is None


async def test_one_poll_over_several_channels(server: Server, http: httpx.AsyncClient) -> None:
    start = (await http.get("/poll?channel=x&channel=y&timeout=0")).json()
    await api_publish(http, "y", "y1")
    await api_publish(http, "x", "x1")

    answer = (
        await http.get(f"/poll?channel=y&channel=x&cursor={start['cursor']}&timeout=0")
    ).json()

    assert sorted(m["data"] for m in answer["messages"]) == ["x1", "y1"]
    assert answer["cursor"].count(".") == 1


async def test_lost_history_is_reported_as_gaps(make_server: ServerFactory) -> None:
    server = await make_server(channels=(ChannelRule(prefix="", history_size=1),))
    async with httpx.AsyncClient(base_url=server.url) as http:
        first = await api_publish(http, "g", 1)
        await api_publish(http, "g", 2)
        await api_publish(http, "g", 3)

        answer = (await http.get(f"/poll?channel=g&cursor={first}&timeout=0")).json()

    assert answer["gaps"] == ["g"]
    assert answer["messages"] == []


async def test_bad_poll_parameters_are_400_with_json(
    server: Server, http: httpx.AsyncClient
) -> None:
    cases = {
        "/poll": "bad_request",
        "/poll?channel=a&timeout=soon": "bad_request",
        "/poll?channel=a&timeout=-1": "bad_request",
        "/poll?channel=a&timeout=99999": "bad_request",
        "/poll?channel=a&cursor=zzz": "invalid_cursor",
        "/poll?channel=%00": "invalid_channel",
    }
    for url, code in cases.items():
        response = await http.get(url)
        assert response.status_code == 400, url
        assert response.json()["error"] == code, url


async def test_a_poll_whose_client_leaves_is_forgotten(server: Server) -> None:
    async with httpx.AsyncClient(base_url=server.url) as http:
        poll = asyncio.create_task(http.get("/poll?channel=left&timeout=30"))
        await _wait_for_waiter(server, "left")
        poll.cancel()
    await wait_until(
        lambda: server.node.hub.channel("left") is None,
        timeout_seconds=2,
        message="the channel to be forgotten",
    )

    assert server.node.hub.channel("left") is None


async def test_cors_headers_on_poll_answers(make_server: ServerFactory) -> None:
    server = await make_server(allowed_origins=("http://page",))
    async with httpx.AsyncClient(base_url=server.url) as http:
        response = await http.get("/poll?channel=a&timeout=0", headers={"Origin": "http://page"})
        preflight = await http.options("/poll", headers={"Origin": "http://page"})

    assert response.headers["access-control-allow-origin"] == "http://page"
    assert preflight.status_code == 204
    assert "GET" in preflight.headers["access-control-allow-methods"]
    assert "Authorization" in preflight.headers["access-control-allow-headers"]


async def test_shutdown_answers_waiting_polls_with_their_cursor(make_server: ServerFactory) -> None:
    server = await make_server()
    async with httpx.AsyncClient(base_url=server.url) as http:
        cursor = await api_publish(http, "bye", 1)
        poll = asyncio.create_task(http.get(f"/poll?channel=bye&cursor={cursor}&timeout=30"))
        await _wait_for_waiter(server, "bye")

        await server.stop()
        response = await asyncio.wait_for(poll, 5)

    assert response.json() == {"messages": [], "cursor": cursor}


# Below the network: one waiter in a real hub, its timeout on a fake clock.


class _Poll:
    def __init__(self) -> None:
        self.clock = FakeClock()
        self.soon: list[Callable[[], None]] = []
        self.hub = Hub(self.soon.append, lambda channel: None)
        self.state = self.hub.open_channel("news", StreamPosition("e0", 3))
        self.feed = self.hub.feed(POLL_ANSWERS, (self.state,))
        self.answers: list[object] = []
        self.waiter = LongPollWaiter(
            self.feed,
            lambda body: self.answers.append(orjson.loads(body)),
            30,
            leave=lambda waiter: self.hub.leave(self.feed, waiter),
            clock=self.clock,
        )
        self.hub.join(POLL_ANSWERS, (self.state,), self.waiter)

    def publish(self, offset: int) -> None:
        position = StreamPosition("e0", offset)
        self.hub.enqueue(self.state, Publication("news", position, b"%d" % offset))
        for callback in self.soon:
            callback()
        self.soon.clear()


def test_a_waiter_unanswered_by_its_timeout_answers_empty_and_leaves_its_feed() -> None:
    poll = _Poll()

    poll.clock.advance(29.9)
    before = list(poll.answers)
    poll.clock.advance(0.1)

    assert before == []
    assert poll.answers == [{"messages": [], "cursor": "e0-3"}]
    assert poll.feed.sinks == set()


def test_a_waiter_answered_before_its_timeout_answers_once() -> None:
    poll = _Poll()

    poll.publish(4)
    timers_left = poll.clock.pending()
    poll.clock.advance(60)

    assert poll.answers == [
        {"messages": [{"channel": "news", "id": "e0-4", "data": 4}], "cursor": "e0-4"}
    ]
    assert timers_left == 0  # the timeout was cancelled


def test_a_waiter_whose_client_left_never_answers() -> None:
    poll = _Poll()

    poll.waiter.cancel()
    poll.clock.advance(60)
    poll.publish(4)

    assert poll.answers == []
    assert poll.feed.sinks == set()


def test_a_poller_stays_a_member_between_polls_and_leaves_after_the_grace() -> None:
    clock = FakeClock()
    left: list[tuple[str, str | None]] = []
    joined: list[str] = []
    presence = PollPresence(2.0, lambda channel, who: left.append((channel, who.user)), clock=clock)
    presence.start()
    alice = Identity("alice", None, frozenset(), None)

    done = presence.polling(("a", "b"), alice, joined.append)
    clock.advance(30)  # a long poll may wait: no leave while it does
    done()
    clock.advance(1.5)
    again = presence.polling(("a",), alice, joined.append)  # polled again in time
    again()
    clock.advance(2.5)

    assert joined == ["a", "b"]
    assert left == [("b", "alice"), ("a", "alice")]  # b at 32 s, a (polled again) at 33.5 s
    presence.stop()


def test_anonymous_pollers_are_never_members() -> None:
    clock = FakeClock()
    joined: list[str] = []
    presence = PollPresence(1.0, lambda channel, who: None, clock=clock)

    presence.polling(("a",), ANONYMOUS, joined.append)()

    assert joined == []
