"""``GET /metrics``: real scrapes over HTTP, parsed with prometheus_client's own parser.

Every value is checked to move after real traffic (a WebSocket, a stream, a poll,
publishes over the API), and the access rules are checked from both sides.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from websockets.asyncio.client import connect

from pushwire import Server
from pushwire.errors import UnauthorizedError
from pushwire.server.auth import ApiKey
from pushwire.server.metrics import LoopLagProbe, MetricsAccess
from tests.conftest import API_KEY, ServerFactory, api_publish, recv_json, ws_url
from tests.server_process import ServerProcess
from tests.services import REDIS_URL, require_service
from tests.waiting import wait_until

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(http: httpx.AsyncClient, **headers: str) -> Samples:
    response = await http.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sample's value; a missing series reads 0, as a counter not yet incremented."""
    return samples.get((name, frozenset({"worker": "0", **labels}.items())), 0.0)


async def test_a_scrape_from_loopback_needs_no_key_and_names_the_node(
    http: httpx.AsyncClient,
) -> None:
    samples = await scrape(http)

    assert value(samples, "pushwire_broker_connected") == 1.0
    assert value(samples, "pushwire_start_time_seconds") <= time.time()
    assert any(name == "pushwire_info" for name, _ in samples)
    assert any(name == "process_cpu_seconds_total" for name, _ in samples)
    publications = {
        dict(labels)["source"] for name, labels in samples if name == "pushwire_publications_total"
    }
    assert publications == {"api", "client", "mqtt"}  # mqtt reads 0 until the bridge publishes


async def test_a_websocket_and_a_publish_move_the_counters(
    server: Server, http: httpx.AsyncClient
) -> None:
    before = await scrape(http)
    async with connect(ws_url(server) + "?channel=news") as ws:
        await recv_json(ws)
        await api_publish(http, "news", {"n": 1})
        await recv_json(ws)
        during = await scrape(http)
    await wait_until(lambda: server.node.counters.transports["websocket"].open_now == 0)
    after = await scrape(http)

    assert value(during, "pushwire_connections", transport="websocket") == 1
    assert value(during, "pushwire_subscriptions") == 1
    assert value(during, "pushwire_channels") == 1
    assert value(during, "pushwire_publications_total", source="api") == 1 + value(
        before, "pushwire_publications_total", source="api"
    )
    assert value(during, "pushwire_deliveries_total", transport="websocket") == 1
    assert value(during, "pushwire_written_bytes_total", transport="websocket") > 10
    assert value(during, "pushwire_fanout_seconds_count") == 1
    assert value(during, "pushwire_history_publications") == 1
    assert value(after, "pushwire_connections", transport="websocket") == 0
    assert value(after, "pushwire_connections_opened_total", transport="websocket") == 1
    assert (
        value(after, "pushwire_connections_closed_total", transport="websocket", reason="client")
        == 1
    )


async def test_a_client_publish_counts_as_client(server: Server, http: httpx.AsyncClient) -> None:
    async with connect(ws_url(server)) as ws:
        await ws.send('{"type":"publish","ref":1,"channel":"open","data":1}')
        await recv_json(ws)
    response = await http.post("/publish", json={"channel": "open", "data": 2})

    samples = await scrape(http)

    assert response.status_code == 200
    assert value(samples, "pushwire_publications_total", source="client") == 2


async def test_streams_and_polls_are_counted_as_their_transports(
    server: Server, http: httpx.AsyncClient
) -> None:
    async with http.stream("GET", "/sse?channel=news") as stream:
        lines = stream.aiter_lines()
        await anext(lines)
        poll = asyncio.create_task(http.get("/poll?channel=news&timeout=5"))
        await wait_until(lambda: server.node.counters.transports["longpoll"].open_now == 1)
        waiting = await scrape(http)
        await api_publish(http, "news", "hello")
        assert (await poll).status_code == 200
        answered = await scrape(http)

    assert value(waiting, "pushwire_connections", transport="sse") == 1
    assert value(waiting, "pushwire_connections", transport="longpoll") == 1
    assert value(answered, "pushwire_connections", transport="longpoll") == 0
    assert (
        value(
            answered, "pushwire_connections_closed_total", transport="longpoll", reason="answered"
        )
        == 1
    )
    assert value(answered, "pushwire_deliveries_total", transport="sse") == 1
    assert value(answered, "pushwire_deliveries_total", transport="longpoll") == 1


async def test_refusals_are_counted_by_error_code_on_both_protocols(
    server: Server, http: httpx.AsyncClient
) -> None:
    wrong_key = await http.post(
        "/api/publish", json={"channel": "x", "data": 1}, headers={"X-API-Key": "nope"}
    )
    async with connect(ws_url(server)) as ws:
        await ws.send("not json")
        error = await recv_json(ws)

    samples = await scrape(http)

    assert wrong_key.status_code == 401
    assert error["code"] == "invalid_json"
    assert (
        value(samples, "pushwire_refused_requests_total", protocol="http", code="unauthorized") == 1
    )
    assert (
        value(samples, "pushwire_refused_requests_total", protocol="websocket", code="invalid_json")
        == 1
    )


async def test_a_slow_consumer_cut_off_is_counted_with_its_close_reason(
    make_server: ServerFactory,
) -> None:
    server = await make_server(max_buffer_bytes=64 * 1024)
    async with connect(ws_url(server) + "?channel=flood") as slow:
        await recv_json(slow)
        slow.transport.pause_reading()
        for _ in range(5000):  # bounded: ~40 MB at most
            await server.publish("flood", "x" * 8000)
            await asyncio.sleep(0)
            if server.node.counters.transports["websocket"].slow_consumers:
                break
        async with httpx.AsyncClient(base_url=server.url) as http:
            await wait_until(
                lambda: server.node.counters.transports["websocket"].open_now == 0,
                message="the slow consumer's close",
            )
            samples = await scrape(http)
        slow.transport.abort()  # it reads nothing, so it would never see the close

    assert value(samples, "pushwire_slow_consumers_total", transport="websocket") == 1
    assert (
        value(
            samples,
            "pushwire_connections_closed_total",
            transport="websocket",
            reason="slow_consumer",
        )
        == 1
    )


async def test_each_series_carries_the_worker_number_from_the_supervisor(
    make_server: ServerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PUSHWIRE_WORKER_INDEX", "3")
    server = await make_server()
    async with httpx.AsyncClient(base_url=server.url) as http:
        response = await http.get("/metrics")

    families = list(text_string_to_metric_families(response.text))
    workers = {sample.labels.get("worker") for family in families for sample in family.samples}
    assert workers == {"3"}


# Access.


async def test_with_a_metrics_token_every_scrape_needs_it_loopback_too(
    make_server: ServerFactory,
) -> None:
    server = await make_server(metrics_token="scrape-me")
    async with httpx.AsyncClient(base_url=server.url) as http:
        bare = await http.get("/metrics")
        wrong = await http.get("/metrics", headers={"Authorization": "Bearer guess"})
        token = await http.get("/metrics", headers={"Authorization": "Bearer scrape-me"})
        api_key = await http.get("/metrics", headers={"X-API-Key": API_KEY})
        health = await http.get("/health")

    assert (bare.status_code, bare.json()["error"]) == (401, "unauthorized")
    assert (wrong.status_code, wrong.json()["error"]) == (401, "unauthorized")
    assert "pushwire_" not in bare.text + wrong.text  # nothing revealed
    assert "scrape-me" not in bare.text + wrong.text
    assert token.status_code == api_key.status_code == 200
    assert health.status_code == 200  # a refused scrape harms nothing else


def test_from_another_host_the_api_key_is_needed_without_a_token() -> None:
    access = MetricsAccess(ApiKey("the-key"))

    access.check("127.0.0.1", {})
    access.check("::1", {})
    access.check("::ffff:127.0.0.1", {})
    access.check("10.1.2.3", {"x-api-key": "the-key"})
    access.check("10.1.2.3", {"authorization": "Bearer the-key"})
    with pytest.raises(UnauthorizedError, match="needs the API key"):
        access.check("10.1.2.3", {})
    with pytest.raises(UnauthorizedError, match="wrong key"):
        access.check("10.1.2.3", {"x-api-key": "not-it"})
    with pytest.raises(UnauthorizedError):
        access.check(None, {})  # no peer address (a Unix socket, say): not loopback


def test_with_a_token_loopback_is_not_enough() -> None:
    access = MetricsAccess(ApiKey("the-key"), "the-token")

    access.check("10.1.2.3", {"authorization": "Bearer the-token"})
    access.check("127.0.0.1", {"x-api-key": "the-key"})
    with pytest.raises(UnauthorizedError, match="metrics token"):
        access.check("127.0.0.1", {})


# The event-loop lag probe.


async def test_the_loop_lag_probe_sees_a_blocked_loop() -> None:
    probe = LoopLagProbe(0.02)
    probe.start()
    await asyncio.sleep(0.05)
    # A callback that holds the loop for 0.2 s, as a huge fan-out or a slow commit would.
    asyncio.get_running_loop().call_soon(time.sleep, 0.2)
    await asyncio.sleep(0.1)
    probe.stop()

    # The tick due during the block ran at least 0.18 s late (and some ran on time).
    assert probe.histogram.count >= 2
    assert probe.histogram.sum >= 0.15
    assert sum(probe.histogram.counts[probe.histogram.bounds.index(0.1) + 1 :]) >= 1


def test_under_workers_each_scrape_is_one_workers_series_and_info_lists_them_all(
    tmp_path: Path, redis_prefix: Callable[[], str]
) -> None:
    require_service("Redis", 6379)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PUSHWIRE_")}
    env.update(PUSHWIRE_API_KEY=API_KEY, PUSHWIRE_BROKER_PREFIX=redis_prefix())
    flags = ["--workers", "2", "--broker", REDIS_URL, "--memory", "--no-demo"]
    process = ServerProcess(flags, env, tmp_path / "workers.log").start()
    try:
        seen: set[str] = set()
        for _ in range(200):  # the kernel picks the worker; bounded, usually a handful
            with httpx.Client(base_url=process.url) as http:  # a new connection each time
                text = http.get("/metrics").text
            workers = {
                sample.labels["worker"]
                for family in text_string_to_metric_families(text)
                for sample in family.samples
            }
            assert len(workers) == 1, workers  # one process answered, for itself
            seen |= workers
            if len(seen) == 2:
                break
        info = httpx.get(process.url + "/api/info", headers={"X-API-Key": API_KEY}).json()
    finally:
        process.stop()

    assert seen == {"1", "2"}
    assert sorted(node["worker"] for node in info["nodes"]) == ["1", "2"]
