"""The origin check on the endpoints browsers use: WebSocket upgrades, SSE, polling, /publish."""

from __future__ import annotations

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from pushwire.server.origins import OriginPolicy
from tests.conftest import ServerFactory, recv_json, ws_url


async def test_a_websocket_from_a_foreign_origin_is_refused_with_403(
    make_server: ServerFactory,
) -> None:
    server = await make_server()

    with pytest.raises(InvalidStatus) as refused:
        async with connect(ws_url(server) + "?channel=a", origin="https://evil.example"):  # type: ignore[arg-type]
            pass

    assert refused.value.response.status_code == 403
    assert b"origin_not_allowed" in refused.value.response.body


@pytest.mark.parametrize("origin", [None, "same"])
async def test_a_websocket_without_origin_or_from_the_same_origin_is_accepted(
    make_server: ServerFactory, origin: str | None
) -> None:
    server = await make_server()
    page_origin = f"http://127.0.0.1:{server.port}" if origin == "same" else None

    async with connect(ws_url(server) + "?channel=a", origin=page_origin) as ws:  # type: ignore[arg-type]
        subscribed = await recv_json(ws)

    assert subscribed["type"] == "subscribed"


async def test_listed_origins_and_star_are_accepted(make_server: ServerFactory) -> None:
    listed = await make_server(allowed_origins=("https://app.example",))
    anyone = await make_server(allowed_origins=("*",))

    for server, origin in ((listed, "https://app.example"), (anyone, "https://any.example")):
        async with connect(ws_url(server) + "?channel=a", origin=origin) as ws:  # type: ignore[arg-type]
            assert (await recv_json(ws))["type"] == "subscribed"


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/sse?channel=a"), ("GET", "/poll?channel=a&timeout=0"), ("POST", "/publish")],
)
async def test_http_endpoints_for_browsers_refuse_a_foreign_origin(
    make_server: ServerFactory, method: str, path: str
) -> None:
    server = await make_server()
    async with httpx.AsyncClient(base_url=server.url, timeout=5) as http:
        refused = await http.request(
            method,
            path,
            json={"channel": "a", "data": 1},
            headers={"Origin": "https://evil.example"},
        )
        same = await http.request(
            method,
            path.replace("/sse?", "/poll?timeout=0&"),
            json={"channel": "a", "data": 1},
            headers={"Origin": server.url},
        )

    assert refused.status_code == 403
    assert refused.json() == {
        "error": "origin_not_allowed",
        "message": "origin 'https://evil.example' is not allowed",
    }
    assert same.status_code == 200


def test_same_origin_compares_host_and_port_with_default_ports() -> None:
    policy = OriginPolicy(())

    assert policy.is_allowed("http://example.com", "example.com")
    assert policy.is_allowed("https://example.com", "example.com:443")
    assert policy.is_allowed("http://127.0.0.1:8000", "127.0.0.1:8000")
    assert not policy.is_allowed("http://127.0.0.1:8001", "127.0.0.1:8000")
    assert not policy.is_allowed("https://example.com.evil", "example.com")
    assert not policy.is_allowed("null", "example.com")
    assert not policy.is_allowed("http://example.com", None)


@pytest.mark.parametrize("origin", ["http://example.com:99999", "http://example.com:port"])
def test_an_origin_with_a_bad_port_is_not_the_same_origin(origin: str) -> None:
    policy = OriginPolicy(())

    assert not policy.is_allowed(origin, "example.com")


async def test_a_bad_origin_port_is_refused_with_403_not_a_dropped_connection(
    make_server: ServerFactory,
) -> None:
    server = await make_server()
    async with httpx.AsyncClient(base_url=server.url, timeout=5) as http:
        refused = await http.get("/poll?channel=a&timeout=0", headers={"Origin": "http://x:1e9"})
        health = await http.get("/health", headers={"Origin": "http://x:1e9"})

    assert refused.status_code == 403
    assert refused.json()["error"] == "origin_not_allowed"
    assert health.status_code == 200
