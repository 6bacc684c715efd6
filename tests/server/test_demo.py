"""The demo chat's server side: logins, what a demo user may reach, the secret's life."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from websockets.asyncio.client import connect

from pushwire import ChannelRule, Server
from pushwire.server.tokens import TokenVerifier
from tests.conftest import ServerFactory, recv_json, ws_url
from tests.server_process import ServerProcess

APP_SECRET = "a" * 64


async def _login(server: Server, **body: Any) -> httpx.Response:
    async with httpx.AsyncClient(base_url=server.url, timeout=5) as http:
        return await http.post("/demo/login", json=body)


async def test_a_login_gives_a_fresh_demo_user_with_name_and_avatar(server: Server) -> None:
    first = (await _login(server, name="Alice", avatar="cat")).json()
    second = (await _login(server, name="Alice", avatar="cat")).json()

    assert first["user"].startswith("demo-")
    assert first["user"] != second["user"]
    assert first["info"] == {"name": "Alice", "avatar": "cat"}
    assert server.authenticator.verify(first["token"]).user == first["user"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"name": "", "avatar": "cat"}, "choose a name"),
        ({"name": "   ", "avatar": "cat"}, "choose a name"),
        ({"name": "x" * 200, "avatar": "cat"}, "at most 40"),
        ({"name": "a\x00b", "avatar": "cat"}, "control"),
        ({"name": "\u202eevil", "avatar": "cat"}, "direction"),
        ({"name": "Bob", "avatar": "https://evil.example/x.png"}, "avatar must be one of"),
        ({"name": 5, "avatar": "cat"}, "name must be a string"),
    ],
)
async def test_bad_logins_get_a_clear_400(
    server: Server, body: dict[str, Any], message: str
) -> None:
    answer = await _login(server, **body)

    assert answer.status_code == 400
    assert message in answer.json()["message"]


async def test_names_with_html_and_emoji_are_kept_as_they_are(server: Server) -> None:
    name = "<img src=x onerror=alert(1)> 👩‍👩‍👧"

    answer = await _login(server, name=name, avatar="fox")

    assert answer.status_code == 200
    assert answer.json()["info"]["name"] == name


async def test_a_demo_user_reaches_the_demo_and_nothing_of_the_application(
    make_server: ServerFactory,
) -> None:
    server = await make_server(
        token_secret=APP_SECRET,
        channels=(ChannelRule(prefix="staff:", subscribe="authenticated"),),
    )
    alice = (await _login(server, name="Alice", avatar="cat")).json()
    bob = (await _login(server, name="Bob", avatar="owl")).json()
    pair = sorted([alice["user"], bob["user"]])
    wanted = {
        "demo:lobby": "subscribed",
        f"user:{alice['user']}": "subscribed",
        f"dm:{pair[0]},{pair[1]}": "subscribed",
        "news": "subscribed",  # open to anyone
        "staff:1": "error",
        f"dm:{min(alice['user'], 'zed')},{max(alice['user'], 'zed')}": "error",
    }
    query = "&".join(f"channel={name}" for name in wanted)

    async with connect(ws_url(server) + f"?{query}&token={alice['token']}") as ws:
        replies = [await recv_json(ws) for _ in wanted]

    got = {}
    for reply in replies:
        if reply["type"] == "subscribed":
            got[reply["channel"]] = "subscribed"
    assert {name: got.get(name, "error") for name in wanted} == wanted


async def test_an_application_token_still_works_beside_the_demo(make_server: ServerFactory) -> None:
    server = await make_server(token_secret=APP_SECRET)
    token = jwt.encode({"sub": "real", "exp": time.time() + 60}, APP_SECRET, algorithm="HS256")

    async with connect(ws_url(server) + f"?channel=user:real&token={token}") as ws:
        reply = await recv_json(ws)

    assert reply["type"] == "subscribed"


async def test_a_token_is_refreshed_for_the_same_user_even_just_after_it_expired(
    server: Server,
) -> None:
    assert server.demo is not None
    secret = server.demo.verifier._key  # the test reaches in: only the demo may mint
    two_minutes_ago = TokenVerifier("HS256", secret, clock=lambda: time.time() - 120)
    expired = two_minutes_ago.mint("demo-abc", info={"name": "Al", "avatar": "cat"}, ttl_seconds=60)
    async with httpx.AsyncClient(base_url=server.url, timeout=5) as http:
        fresh = await http.post("/demo/refresh", headers={"Authorization": f"Bearer {expired}"})
        forged = await http.post(
            "/demo/refresh",
            headers={"Authorization": "Bearer " + jwt.encode({"sub": "demo-x"}, "k" * 64)},
        )

    assert fresh.status_code == 200, fresh.text
    assert fresh.json()["user"] == "demo-abc"
    assert server.authenticator.verify(fresh.json()["token"]).info == {
        "name": "Al",
        "avatar": "cat",
    }
    assert forged.status_code == 401


def test_demo_logins_survive_a_restart(server_process: Any, tmp_path: Path) -> None:
    process: ServerProcess = server_process("--data-dir", str(tmp_path / "data"))
    token = httpx.post(process.url + "/demo/login", json={"name": "A", "avatar": "cat"}).json()[
        "token"
    ]
    process.stop()
    process.start()

    answer = httpx.get(
        process.url + "/poll?channel=demo:lobby&timeout=0",
        headers={"Authorization": f"Bearer {token}"},
    )

    assert answer.status_code == 200, answer.text
    assert (tmp_path / "data" / "demo-token-secret").stat().st_mode & 0o077 == 0


async def test_without_the_demo_the_root_is_a_json_index(make_server: ServerFactory) -> None:
    server = await make_server(demo=False)
    async with httpx.AsyncClient(base_url=server.url, timeout=5) as http:
        root = await http.get("/")
        login = await http.post("/demo/login", json={"name": "A", "avatar": "cat"})

    assert root.status_code == 200
    assert "/ws" in root.json()["endpoints"]
    assert login.status_code == 404
