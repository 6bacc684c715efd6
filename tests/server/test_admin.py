"""``GET /api/info`` and the admin page's files, over real sockets; keys and bad paths."""

from __future__ import annotations

import httpx
import pytest
from websockets.asyncio.client import connect

from pushwire import Server
from pushwire.core.counters import NodeStatistics
from tests.conftest import API_KEY, api_publish, recv_json, ws_url

KEY = {"X-API-Key": API_KEY}


async def test_info_names_the_node_and_counts_what_it_carries(
    server: Server, http: httpx.AsyncClient
) -> None:
    async with connect(ws_url(server) + "?channel=news") as ws:
        await recv_json(ws)
        await api_publish(http, "news", 1)
        await recv_json(ws)
        info = (await http.get("/api/info", headers=KEY)).json()

    (node,) = info["nodes"]
    assert info["node"] == node["node"] == server.node.id
    assert info["partial"] is False
    assert info["broker"] == {"name": "memory", "connected": True}
    assert node["version"]
    assert node["worker"] == "0"
    assert node["uptime_seconds"] >= 0
    assert node["connections"] == {"websocket": 1, "sse": 0, "longpoll": 0}
    assert node["publications"] == {"api": 1, "client": 0, "mqtt": 0}
    assert node["deliveries"]["websocket"] == 1
    assert (node["channels"], node["subscriptions"]) == (1, 1)
    assert info["totals"] == {
        "nodes": 1,
        "connections": {"websocket": 1, "sse": 0, "longpoll": 0},
        "subscriptions": 1,
        "publications": 1,
        "deliveries": 1,
    }


@pytest.mark.parametrize("headers", [{}, {"X-API-Key": "wrong"}])
async def test_info_without_the_right_key_is_refused_and_shows_nothing(
    http: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    response = await http.get("/api/info", headers=headers)
    health = await http.get("/health")

    assert response.status_code == 401
    assert response.json()["error"] == "unauthorized"
    assert "nodes" not in response.text
    assert health.status_code == 200


def test_node_statistics_travel_as_json_and_ignore_fields_they_do_not_know() -> None:
    statistics = NodeStatistics(
        node="n1",
        about={"version": "1"},
        started_at=1.0,
        uptime_seconds=2.0,
        broker="redis",
        broker_connected=False,
        channels=3,
        subscriptions=4,
        connections={"websocket": 5},
        publications={"api": 6},
        deliveries={"websocket": 7},
    )
    newer = statistics.to_json()[:-1] + b',"from_a_newer_node":true}'

    assert NodeStatistics.from_json(statistics.to_json()) == statistics
    assert NodeStatistics.from_json(newer) == statistics


async def test_the_admin_page_and_its_files_are_served_without_a_key(
    http: httpx.AsyncClient,
) -> None:
    page = await http.get("/admin")
    script = await http.get("/admin/admin.js")

    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert 'data-testid="admin-key"' in page.text
    assert "Content-Security-Policy" in page.text
    assert script.headers["content-type"] == "text/javascript; charset=utf-8"
    assert 'import "../pushwire.js"' in script.text


async def test_admin_with_a_slash_is_sent_to_admin_without_one(http: httpx.AsyncClient) -> None:
    response = await http.get("/admin/")

    # Relative, so that it also works with the server mounted under a path (ASGI).
    assert (response.status_code, response.headers["location"]) == (301, "../admin")


@pytest.mark.parametrize(
    "path",
    ["/admin/nope.js", "/admin/%2e%2e/app.py", "/admin/.hidden.js", "/admin/sub/x.js", "/adminx"],
)
async def test_no_other_file_is_served_under_admin(http: httpx.AsyncClient, path: str) -> None:
    response = await http.get(path)

    assert response.status_code == 404
    assert response.json()["error"] == "not_found"
