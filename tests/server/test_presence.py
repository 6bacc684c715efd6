"""Presence and join/leave end to end: several users, several connections each, churn."""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from typing import Any

import httpx
import jwt
import orjson
import pytest
from httpx_sse import aconnect_sse
from websockets.asyncio.client import ClientConnection, connect

from pushwire import ChannelRule, Server
from tests.conftest import API_KEY, ServerFactory, recv_json, recv_until, ws_url
from tests.waiting import wait_until

SECRET = "p" * 64
ROOM = "room:1"


def mint(user: str, name: str | None = None) -> str:
    claims: dict[str, Any] = {"sub": user, "exp": time.time() + 3600}
    if name is not None:
        claims["info"] = {"name": name}
    return jwt.encode(claims, SECRET, algorithm="HS256")


@pytest.fixture
async def server(make_server: ServerFactory) -> Server:
    return await make_server(
        token_secret=SECRET,
        presence_poll_grace_seconds=0.5,
        channels=(
            ChannelRule(prefix="room:", presence=True, join_leave=True),
            ChannelRule(prefix="quiet:", presence=True),
        ),
    )


def _url(server: Server, user: str, channel: str = ROOM) -> str:
    return ws_url(server) + f"?channel={channel}&token={mint(user, user.title())}"


async def _members(server: Server, channel: str = ROOM) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(base_url=server.url, timeout=5) as http:
        answer = await http.get(f"/api/presence?channel={channel}", headers={"X-API-Key": API_KEY})
    assert answer.status_code == 200, answer.text
    members = answer.json()["members"]
    assert isinstance(members, list)
    return members


async def _events(ws: ClientConnection, count: int) -> list[tuple[str, str]]:
    """The next ``count`` join/leave frames as (type, user), skipping other frames."""
    seen: list[tuple[str, str]] = []
    while len(seen) < count:
        frame = await recv_json(ws)
        if frame["type"] in ("join", "leave"):
            seen.append((frame["type"], frame["user"]))
    return seen


async def test_a_user_with_three_tabs_is_one_member_who_joins_once_and_leaves_last(
    server: Server,
) -> None:
    async with connect(_url(server, "observer")) as observer:
        await recv_until(observer, "subscribed")
        assert await _events(observer, 1) == [("join", "observer")]
        tabs = [await connect(_url(server, "alice")) for _ in range(3)]
        bob = await connect(_url(server, "bob"))
        joins = await _events(observer, 2)
        members = await _members(server)

        for tab in tabs[:2]:
            await tab.close()
        await wait_until(
            lambda: server.node.presence.members(ROOM)[0].connections == 1,
            message="alice down to one connection",
        )
        still = await _members(server)
        await tabs[2].close()
        leave = await _events(observer, 1)
        await bob.close()

    assert joins == [("join", "alice"), ("join", "bob")]
    assert members == [
        {"user": "alice", "info": {"name": "Alice"}, "connections": 3},
        {"user": "bob", "info": {"name": "Bob"}, "connections": 1},
        {"user": "observer", "info": {"name": "Observer"}, "connections": 1},
    ]
    assert [m["user"] for m in still] == ["alice", "bob", "observer"]
    assert leave == [("leave", "alice")]


async def test_a_client_killed_without_a_close_leaves_presence(server: Server) -> None:
    script = (
        "import asyncio, sys\n"
        "from websockets.asyncio.client import connect\n"
        "async def main():\n"
        "    async with connect(sys.argv[1]) as ws:\n"
        "        await ws.recv()\n"
        "        print('subscribed', flush=True)\n"
        "        await asyncio.sleep(60)\n"
        "asyncio.run(main())\n"
    )
    async with connect(_url(server, "observer")) as observer:
        await recv_until(observer, "subscribed")
        await _events(observer, 1)
        child = await asyncio.create_subprocess_exec(
            sys.executable, "-c", script, _url(server, "carol"), stdout=asyncio.subprocess.PIPE
        )
        try:
            assert child.stdout is not None
            line = await asyncio.wait_for(child.stdout.readline(), 10)
            assert line.strip() == b"subscribed"
            joined = await _events(observer, 1)
            child.send_signal(signal.SIGKILL)  # no close frame, no goodbye
            left = await _events(observer, 1)
        finally:
            if child.returncode is None:
                child.kill()
            await child.wait()

    assert joined == [("join", "carol")]
    assert left == [("leave", "carol")]


async def test_presence_over_the_websocket_is_for_subscribers_only(server: Server) -> None:
    async with connect(_url(server, "alice")) as ws:
        await recv_until(ws, "subscribed")
        await ws.send(orjson.dumps({"type": "presence", "channel": ROOM, "ref": 1}))
        answer = await recv_until(ws, "presence")
        await ws.send(orjson.dumps({"type": "presence", "channel": "room:2", "ref": 2}))
        refused = await recv_until(ws, "error")

    assert answer == {
        "type": "presence",
        "ref": 1,
        "channel": ROOM,
        "members": [{"user": "alice", "info": {"name": "Alice"}, "connections": 1}],
    }
    assert refused["code"] == "permission_denied"
    assert refused["ref"] == 2


async def test_presence_is_off_unless_the_rule_says_so(server: Server) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=5) as http:
        off = await http.get("/api/presence?channel=lobby", headers={"X-API-Key": API_KEY})
        client = await http.get(
            "/presence?channel=quiet:1", headers={"Authorization": f"Bearer {mint('alice')}"}
        )

    assert off.status_code == 400
    assert off.json()["error"] == "bad_request"
    assert client.json() == {"channel": "quiet:1", "members": []}


async def test_join_leave_without_presence_is_silent_on_quiet_channels(server: Server) -> None:
    async with connect(_url(server, "observer", "quiet:1")) as observer:
        await recv_until(observer, "subscribed")
        async with connect(_url(server, "alice", "quiet:1")) as alice:
            await recv_until(alice, "subscribed")
        await server.publish("quiet:1", "only this")
        frame = await recv_json(observer)

    assert frame["type"] == "message"  # no join or leave came before it


async def test_sse_streams_are_members_and_get_join_and_leave_events(server: Server) -> None:
    headers = {"Authorization": f"Bearer {mint('dave', 'Dave')}"}
    async with httpx.AsyncClient(base_url=server.url, timeout=5) as http:
        async with aconnect_sse(http, "GET", f"/sse?channel={ROOM}", headers=headers) as source:
            events = source.aiter_sse()
            first = None
            async for event in events:
                if event.data:
                    first = event
                    break
            members = await _members(server)
            async with connect(_url(server, "erin")) as erin:
                await recv_until(erin, "subscribed")
                erin_join = await anext(events)
            erin_leave = await anext(events)
        await wait_until(lambda: not server.node.presence.members(ROOM), message="dave gone")

    assert first is not None
    assert (first.event, orjson.loads(first.data)) == (
        "pushwire.join",
        {"channel": ROOM, "user": "dave", "info": {"name": "Dave"}},
    )
    assert [m["user"] for m in members] == ["dave"]
    assert (erin_join.event, orjson.loads(erin_join.data)["user"]) == ("pushwire.join", "erin")
    assert (erin_leave.event, orjson.loads(erin_leave.data)["user"]) == ("pushwire.leave", "erin")


async def test_a_polling_user_stays_a_member_between_polls_and_leaves_after_the_grace(
    server: Server,
) -> None:
    headers = {"Authorization": f"Bearer {mint('frank', 'Frank')}"}
    async with (
        connect(_url(server, "observer")) as observer,
        httpx.AsyncClient(base_url=server.url, timeout=5) as http,
    ):
        await recv_until(observer, "subscribed")
        await _events(observer, 1)
        first = await http.get(f"/poll?channel={ROOM}&timeout=0", headers=headers)
        joined = await _events(observer, 1)
        await http.get(
            f"/poll?channel={ROOM}&timeout=0&cursor={first.json()['cursor']}", headers=headers
        )
        between = await _members(server)
        left = await _events(observer, 1)  # no more polls: gone after the grace

    assert joined == [("join", "frank")]
    assert [m["user"] for m in between] == ["frank", "observer"]
    assert left == [("leave", "frank")]


async def test_a_waiting_long_poll_gets_join_events(server: Server) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        first = await http.get(
            f"/poll?channel={ROOM}&timeout=0", headers={"Authorization": f"Bearer {mint('gina')}"}
        )
        cursor = first.json()["cursor"]
        waiting = asyncio.create_task(
            http.get(
                f"/poll?channel={ROOM}&timeout=10&cursor={cursor}",
                headers={"Authorization": f"Bearer {mint('gina')}"},
            )
        )
        await wait_until(lambda: server.node.hub.statistics(), message="the poll waiting")
        async with connect(_url(server, "hank")) as hank:
            await recv_until(hank, "subscribed")
            answer = (await asyncio.wait_for(waiting, 5)).json()

    assert answer["events"] == [
        {"type": "join", "channel": ROOM, "user": "hank", "info": {"name": "Hank"}}
    ]
    assert answer["messages"] == []


async def test_a_poll_that_makes_its_user_a_member_carries_its_own_join(server: Server) -> None:
    headers = {"Authorization": f"Bearer {mint('ivy', 'Ivy')}"}
    async with httpx.AsyncClient(base_url=server.url, timeout=5) as http:
        first = (await http.get(f"/poll?channel={ROOM}&timeout=0", headers=headers)).json()
        again = (await http.get(f"/poll?channel={ROOM}&timeout=0", headers=headers)).json()

    assert first["events"] == [
        {"type": "join", "channel": ROOM, "user": "ivy", "info": {"name": "Ivy"}}
    ]
    assert "events" not in again  # still a member: no second join


async def test_a_poller_that_says_goodbye_leaves_at_once(make_server: ServerFactory) -> None:
    server = await make_server(
        token_secret=SECRET,
        presence_poll_grace_seconds=60,
        channels=(ChannelRule(prefix="room:", presence=True, join_leave=True),),
    )
    headers = {"Authorization": f"Bearer {mint('jo', 'Jo')}"}
    async with (
        connect(_url(server, "observer")) as observer,
        httpx.AsyncClient(base_url=server.url, timeout=5) as http,
    ):
        await recv_until(observer, "subscribed")
        await _events(observer, 1)
        await http.get(f"/poll?channel={ROOM}&timeout=0", headers=headers)
        joined = await _events(observer, 1)
        goodbye = await http.get(f"/poll?channel={ROOM}&leave=1", headers=headers)
        left = await _events(observer, 1)  # long before the 60 s grace

    assert joined == [("join", "jo")]
    assert goodbye.json() == {"left": [ROOM]}
    assert left == [("leave", "jo")]
