"""``PushwireApp`` under a real uvicorn: mounted in FastAPI, and served alone.

Every transport and the API go through the ASGI server's sockets and messages; the
clients are the ``websockets`` client and httpx, as for ``pushwire serve``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any, Literal

import httpx
import orjson
import pytest
import uvicorn
from fastapi import FastAPI
from playwright.async_api import async_playwright, expect
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from pushwire import Config
from pushwire.asgi import PushwireApp
from tests.client_js.support import CHROMIUM, CHROMIUM_ARGS, needs_chromium
from tests.conftest import API_KEY, recv_json
from tests.server_process import free_port

KEY = {"X-API-Key": API_KEY}


@contextlib.asynccontextmanager
async def serving(app: Any, *, lifespan: Literal["on", "off"] = "on") -> AsyncIterator[str]:
    """Run ``app`` under uvicorn on 127.0.0.1 in this event loop; yields its URL."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, lifespan=lifespan, log_level="error")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()  # raises why it could not start
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


def pushwire(**settings: Any) -> PushwireApp:
    return PushwireApp(Config(**{"history": "memory", "api_key": API_KEY, **settings}))


def fastapi_with(push: PushwireApp) -> FastAPI:
    """The documented embedding: mounted at /push, its lifespan the application's."""
    app = FastAPI(lifespan=push.lifespan)

    @app.post("/orders/{number}")
    async def order(number: int) -> dict[str, str]:
        publication = await push.publish("orders", {"number": number})
        return {"id": publication.position.cursor}

    app.mount("/push", push)
    return app


@pytest.fixture
async def mounted() -> AsyncIterator[tuple[PushwireApp, str]]:
    push = pushwire()
    async with serving(fastapi_with(push)) as url:
        yield push, url


def ws(url: str, path: str) -> str:
    return url.replace("http://", "ws://") + path


async def test_a_route_of_the_application_publishes_to_a_websocket(
    mounted: tuple[PushwireApp, str],
) -> None:
    _, url = mounted
    async with (
        connect(ws(url, "/push/ws?channel=orders")) as subscriber,
        httpx.AsyncClient() as http,
    ):
        assert (await recv_json(subscriber))["type"] == "subscribed"
        answer = await http.post(url + "/orders/7")
        message = await recv_json(subscriber)

    assert answer.status_code == 200
    assert (message["channel"], message["data"]) == ("orders", {"number": 7})
    assert message["id"] == answer.json()["id"]


async def test_the_api_sse_polls_and_client_publishes_work_under_the_mount(
    mounted: tuple[PushwireApp, str],
) -> None:
    _, url = mounted
    async with httpx.AsyncClient(base_url=url + "/push", timeout=10) as http:
        async with http.stream("GET", "/sse?channel=news") as stream:
            lines = stream.aiter_lines()
            assert (await anext(lines)).startswith("retry:")
            poll = asyncio.create_task(http.get("/poll?channel=news&timeout=5"))
            await asyncio.sleep(0.2)  # the poll is waiting
            published = await http.post(
                "/api/publish", json={"channel": "news", "data": 1}, headers=KEY
            )
            event = [await anext(lines)]
            while not event[-1].startswith("data:"):  # past the opening id-only event
                event.append(await anext(lines))
            answered = await poll
        client = await http.post("/publish", json={"channel": "news", "data": 2})
        history = await http.get("/api/history?channel=news", headers=KEY)

    assert published.status_code == client.status_code == 200
    assert event[-2] == f"id: {published.json()['id']}"
    assert orjson.loads(event[-1].removeprefix("data: "))["data"] == 1
    assert [m["data"] for m in answered.json()["messages"]] == [1]
    assert [m["data"] for m in history.json()["messages"]] == [1, 2]


async def test_commands_errors_and_limits_are_the_servers_own(
    mounted: tuple[PushwireApp, str],
) -> None:
    _, url = mounted
    async with connect(ws(url, "/push/ws")) as client:
        await client.send('{"type":"subscribe","ref":1,"channel":"a b"}')
        error = await recv_json(client)
        await client.send('{"type":"ping","ref":2}')
        pong = await recv_json(client)
        await client.send("x" * 70_000)  # over max_message_bytes (64 KiB)
        with pytest.raises(ConnectionClosed) as closed:
            await client.recv()

    assert (error["code"], error["ref"]) == ("invalid_channel", 1)
    assert pong == {"type": "pong", "ref": 2}
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1009


async def test_refusals_keep_their_status_and_nothing_else_is_harmed(
    mounted: tuple[PushwireApp, str],
) -> None:
    _, url = mounted
    async with httpx.AsyncClient(base_url=url + "/push") as http:
        info = await http.get("/api/info", headers={"X-API-Key": "wrong"})
        missing = await http.get("/nope")
        too_big = await http.post("/publish", content=b"x" * 70_000)
        with pytest.raises(InvalidStatus) as refused:
            async with connect(ws(url, "/push/ws?token=not-a-token")):
                pass
        health = await http.get("/health")

    assert (info.status_code, info.json()["error"]) == (401, "unauthorized")
    assert missing.status_code == 404
    assert too_big.status_code == 413
    assert refused.value.response.status_code == 401
    assert orjson.loads(refused.value.response.body or b"{}")["error"] == "invalid_token"
    assert health.json()["status"] == "ok"


async def test_metrics_and_info_count_asgi_connections(mounted: tuple[PushwireApp, str]) -> None:
    push, url = mounted
    async with connect(ws(url, "/push/ws?channel=c")) as client, httpx.AsyncClient() as http:
        await recv_json(client)
        info = (await http.get(url + "/push/api/info", headers=KEY)).json()
        metrics = await http.get(url + "/push/metrics")
    await asyncio.sleep(0.1)
    closed = push.node.counters.transports["websocket"].closed

    assert info["totals"]["connections"]["websocket"] == 1
    assert 'pushwire_connections{transport="websocket",worker="0"} 1.0' in metrics.text
    assert closed == {"client": 1}


async def test_stopping_sends_every_websocket_away_with_1001() -> None:
    push = pushwire()
    async with serving(fastapi_with(push)) as url, connect(ws(url, "/push/ws?channel=c")) as client:
        await recv_json(client)
        await push.stop()  # what the application's lifespan does at shutdown
        with pytest.raises(ConnectionClosed) as closed:
            await client.recv()

    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1001


async def test_served_alone_uvicorn_runs_its_lifespan() -> None:
    push = pushwire()
    async with serving(push) as url, connect(ws(url, "/ws?channel=solo")) as client:
        await recv_json(client)
        await push.publish("solo", "hi")
        message = await recv_json(client)

    assert message["data"] == "hi"


async def test_without_its_lifespan_every_request_fails_loudly() -> None:
    push = pushwire()
    async with serving(push, lifespan="off") as url, httpx.AsyncClient() as http:
        response = await http.get(url + "/health")

    assert response.status_code == 500  # uvicorn's answer to the UsageError, which it logs


@needs_chromium
async def test_the_admin_page_works_under_the_mount(mounted: tuple[PushwireApp, str]) -> None:
    _, url = mounted
    async with (
        connect(ws(url, "/push/ws?channel=seen")) as client,
        async_playwright() as playwright,
    ):
        await recv_json(client)
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
        )
        try:
            page = await browser.new_page()
            await page.goto(url + "/push/admin")
            await page.get_by_test_id("admin-key").fill(API_KEY)
            await page.get_by_test_id("admin-login").click()
            row = page.locator('[data-testid="channel-row"][data-channel="seen"]')
            await expect(row).to_have_attribute("data-subscribers", "1", timeout=10_000)
            await row.locator("button").click()
            await expect(page.get_by_test_id("live-note")).to_have_text("(live)", timeout=10_000)
        finally:
            await browser.close()
