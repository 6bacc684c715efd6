"""The MQTT bridge end to end: real Mosquitto, paho-mqtt devices, pushwire's own clients.

Every test uses topics of its own under the shared Mosquitto on 1883; tests that
stop the broker, or need logins, start a Mosquitto of their own (tests.mosquitto).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from httpx_sse import aconnect_sse
from websockets.asyncio.client import ClientConnection, connect

from pushwire import Server
from pushwire.server.mqtt_bridge import ORIGIN_PROPERTY, MqttBridge
from pushwire.server.mqtt_settings import MqttRoute, MqttSettings
from tests.conftest import API_KEY, ServerFactory, recv_json, recv_until, ws_url
from tests.mosquitto import SHARED_PORT, Device, OwnMosquitto, require_mosquitto, unique
from tests.server.test_metrics import scrape, value
from tests.server_process import ServerProcess
from tests.services import REDIS_URL, require_service
from tests.waiting import wait_until

pytestmark = pytest.mark.integration

SHARED_URL = f"mqtt://127.0.0.1:{SHARED_PORT}"
Bridged = Callable[..., Awaitable[Server]]


@pytest.fixture
def prefix() -> str:
    """The test's own first topic level (and channel name level)."""
    require_mosquitto()
    return unique("t")


def bridge_settings(prefix: str, url: str = SHARED_URL, **extra: Any) -> MqttSettings:
    values: dict[str, Any] = {
        "client_id": unique("pw-"),
        "routes": (MqttRoute(f"{prefix}:", "both", 1),),
        "session_expiry_seconds": 60,  # the shared broker forgets the tests' sessions soon
        "reconnect_min_delay_seconds": 0.05,
        "reconnect_max_delay_seconds": 0.3,
        "publish_timeout_seconds": 3.0,
    }
    values.update(extra)
    return MqttSettings(url=url, **values)


@pytest.fixture
def bridged(make_server: ServerFactory) -> Bridged:
    """Start an in-process server bridged to MQTT and wait until the bridge is subscribed."""

    async def start(
        prefix: str, *, url: str = SHARED_URL, wait: bool = True, **overrides: Any
    ) -> Server:
        mqtt = overrides.pop("mqtt", None) or bridge_settings(prefix, url)
        server = await make_server(mqtt=mqtt, **overrides)
        if wait:
            await wait_until(lambda: bridge_of(server).connected, message="the bridge to connect")
        return server

    return start


@pytest.fixture
async def device() -> AsyncIterator[Device]:
    require_mosquitto()
    made = Device().connect()
    yield made
    made.close()


def bridge_of(server: Server) -> MqttBridge:
    assert server.mqtt is not None
    return server.mqtt


def envelope(topic: str, payload: Any, *, retain: bool = False) -> dict[str, Any]:
    return {"topic": topic, "qos": 1, "retain": retain, "payload": payload}


async def history(http: httpx.AsyncClient, channel: str, limit: int = 100) -> list[Any]:
    response = await http.get("/history", params={"channel": channel, "limit": limit})
    assert response.status_code == 200, response.text
    return [message["data"] for message in response.json()["messages"]]


async def messages(ws: ClientConnection, count: int) -> list[dict[str, Any]]:
    return [await recv_until(ws, "message") for _ in range(count)]


# In: MQTT -> pushwire.


async def test_mqtt_messages_reach_websocket_sse_and_poll_subscribers(
    bridged: Bridged, device: Device, prefix: str
) -> None:
    server = await bridged(prefix)
    channel, topic = f"{prefix}:42:telemetry", f"{prefix}/42/telemetry"
    payloads = [b'{"celsius": 21.5}', b"hello", b"\xff\x00\x01"]
    expected = [
        envelope(topic, {"celsius": 21.5}),
        envelope(topic, "hello"),
        envelope(topic, {"base64": "/wAB"}),
    ]
    async with (
        httpx.AsyncClient(base_url=server.url, timeout=10) as http,
        connect(ws_url(server) + f"?channel={channel}") as ws,
    ):
        await recv_until(ws, "subscribed")
        poll_start = (await http.get(f"/poll?channel={channel}&timeout=0")).json()["cursor"]
        sse = asyncio.create_task(_sse_data(server.url, channel, len(payloads)))
        await wait_until(lambda: _subscribers(server, channel) == 2, message="the SSE stream")

        for payload in payloads:
            await device.publish_confirmed(topic, payload)

        by_ws = [frame["data"] for frame in await messages(ws, len(payloads))]
        by_sse = await asyncio.wait_for(sse, 5)
        polled = (await http.get(f"/poll?channel={channel}&cursor={poll_start}&timeout=5")).json()

    assert by_ws == expected
    assert by_sse == expected
    assert [message["data"] for message in polled["messages"]] == expected
    assert bridge_of(server).status() == {
        "connected": True,
        "in": 3,
        "out": 0,
        "dropped": 0,
        "error": None,
    }


async def _sse_data(url: str, channel: str, count: int) -> list[Any]:
    found: list[Any] = []
    async with (
        httpx.AsyncClient(base_url=url, timeout=10) as http,
        aconnect_sse(http, "GET", f"/sse?channel={channel}") as source,
    ):
        async for event in source.aiter_sse():
            if event.data:
                found.append(orjson.loads(event.data)["data"])
                if len(found) == count:
                    return found
    return found


def _subscribers(server: Server, channel: str) -> int:
    return sum(s.subscribers for s in server.node.hub.statistics() if s.channel == channel)


async def test_an_oversized_payload_is_dropped_counted_and_logged(
    bridged: Bridged, device: Device, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    server = await bridged(prefix, max_message_bytes=1024)
    topic = f"{prefix}/42/telemetry"

    with caplog.at_level(logging.WARNING, logger="pushwire.mqtt"):
        await device.publish_confirmed(topic, b"x" * 2000)
        await device.publish_confirmed(topic, b"after")
        async with httpx.AsyncClient(base_url=server.url) as http:
            kept = await wait_until(lambda: history(http, f"{prefix}:42:telemetry"))

    assert kept == [envelope(topic, "after")]
    assert bridge_of(server).status()["dropped"] == 1
    assert "2000 bytes" in caplog.text
    assert "max_message_bytes" in caplog.text


async def test_a_retained_message_becomes_the_channel_latest_state_once(
    bridged: Bridged,
    device: Device,
    prefix: str,
    caplog: pytest.LogCaptureFixture,
    redis_prefix: Callable[[], str],
) -> None:
    require_service("redis", 6379)
    cluster = {"broker": REDIS_URL, "broker_prefix": redis_prefix()}
    topic, channel = f"{prefix}/42/state", f"{prefix}:42:state"
    await device.publish_confirmed(topic, b'{"led": "on"}', retain=True)
    try:
        with caplog.at_level(logging.DEBUG, logger="pushwire.mqtt"):
            first = await bridged(prefix, **cluster)
            async with httpx.AsyncClient(base_url=first.url) as http:
                # What a new subscriber does: read the latest, then subscribe after it.
                latest = (await wait_until(lambda: _latest(http, channel)))["messages"]
            # Another node's subscription (or a new session's) is sent it again.
            second = await bridged(prefix, **cluster)
            await wait_until(lambda: "latest already" in caplog.text)
            async with httpx.AsyncClient(base_url=second.url) as http:
                kept = await history(http, channel)
    finally:
        await device.publish_confirmed(topic, b"", retain=True)  # the broker forgets it

    assert [message["data"] for message in latest] == [envelope(topic, {"led": "on"}, retain=True)]
    assert kept == [envelope(topic, {"led": "on"}, retain=True)]


async def _latest(http: httpx.AsyncClient, channel: str) -> dict[str, Any] | None:
    page = (await http.get("/history", params={"channel": channel, "limit": 1})).json()
    return page if page["messages"] else None


# Out: pushwire -> MQTT.


async def test_browser_publishes_reach_the_device_once_and_never_come_back(
    bridged: Bridged, device: Device, prefix: str
) -> None:
    server = await bridged(prefix)
    channel, topic = f"{prefix}:42:commands", f"{prefix}/42/commands"
    device.subscribe(f"{prefix}/#")

    async with (
        httpx.AsyncClient(base_url=server.url, timeout=10) as http,
        connect(ws_url(server)) as ws,
    ):
        publish = {"type": "publish", "channel": channel, "data": {"led": "on"}, "ref": 1}
        await ws.send(orjson.dumps(publish))
        published = await recv_json(ws)
        by_post = await http.post("/publish", json={"channel": channel, "data": "reboot"})
        by_api = await http.post(
            "/api/publish",
            json={"channel": channel, "data": {"base64": "AAE="}},
            headers={"X-API-Key": API_KEY},
        )
        # The device's own message comes after any echo of the three: once it is in,
        # an echo would be too.
        await device.publish_confirmed(topic, b"done")
        kept = await wait_until(
            lambda: _when(history(http, channel), lambda found: len(found) >= 4)
        )
        received = await device.wait_for(4)
        metrics = await scrape(http)

    assert published["type"] == "published"
    assert (by_post.status_code, by_api.status_code) == (200, 200)
    assert [(m.topic, m.payload) for m in received] == [
        (topic, b'{"led":"on"}'),
        (topic, b"reboot"),
        (topic, b"\x00\x01"),
        (topic, b"done"),
    ]
    assert received[0].user_properties == ((ORIGIN_PROPERTY, "pushwire"),)
    assert kept == [{"led": "on"}, "reboot", {"base64": "AAE="}, envelope(topic, "done")]
    assert bridge_of(server).status()["in"] == 1
    assert bridge_of(server).status()["out"] == 3
    assert value(metrics, "pushwire_mqtt_messages_in_total") == 1
    assert value(metrics, "pushwire_mqtt_messages_out_total") == 3
    assert value(metrics, "pushwire_mqtt_dropped_total") == 0
    assert value(metrics, "pushwire_mqtt_connected") == 1


async def test_a_publish_is_answered_only_after_the_brokers_puback(
    bridged: Bridged, prefix: str, tmp_path: Path
) -> None:
    require_mosquitto()
    mosquitto = OwnMosquitto(tmp_path / "mosquitto").start()
    try:
        server = await bridged(prefix, url=mosquitto.url)
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
            mosquitto.pause()
            body = {"channel": f"{prefix}:42:commands", "data": {"led": "on"}}
            publishing = asyncio.create_task(http.post("/publish", json=body))
            await wait_until(lambda: _in_history(server, f"{prefix}:42:commands"))
            await asyncio.sleep(0.3)  # in history, and still waiting for the broker
            answered_while_paused = publishing.done()
            mosquitto.resume()
            answer = await asyncio.wait_for(publishing, 5)
    finally:
        mosquitto.stop()

    assert not answered_while_paused
    assert answer.status_code == 200
    assert bridge_of(server).sent == 1


async def _in_history(server: Server, channel: str) -> bool:
    return bool((await server.node.history(channel)).publications)


async def _when(found: Awaitable[list[Any]], ready: Callable[[list[Any]], bool]) -> list[Any]:
    value = await found
    return value if ready(value) else []


async def test_a_channel_with_no_topic_is_refused_and_nothing_is_published(
    bridged: Bridged, prefix: str
) -> None:
    server = await bridged(prefix)

    async with httpx.AsyncClient(base_url=server.url) as http:
        refused = await http.post("/publish", json={"channel": f"{prefix}:a/b", "data": 1})
        left = await history(http, f"{prefix}:a/b")

    assert refused.status_code == 400
    assert refused.json()["error"] == "invalid_channel"
    assert left == []


# The cluster: two nodes on one Redis and one Mosquitto.


async def test_two_nodes_take_each_message_once_and_send_each_publication_once(
    bridged: Bridged, device: Device, prefix: str, redis_prefix: Callable[[], str]
) -> None:
    require_service("redis", 6379)
    cluster = {"broker": REDIS_URL, "broker_prefix": redis_prefix()}
    first = await bridged(prefix, **cluster)
    second = await bridged(prefix, **cluster)
    telemetry, commands = f"{prefix}/42/telemetry", f"{prefix}/42/commands"
    device.subscribe(f"{prefix}/42/commands")

    async with connect(ws_url(second) + f"?channel={prefix}:42:telemetry") as ws:
        await recv_until(ws, "subscribed")
        for n in range(10):
            await device.publish_confirmed(telemetry, str(n))
        readings = [frame["data"]["payload"] for frame in await messages(ws, 10)]
    async with httpx.AsyncClient(base_url=first.url) as http:
        sent = await http.post("/publish", json={"channel": f"{prefix}:42:commands", "data": 1})
        await device.publish_confirmed(commands, b"marker")
        kept = await wait_until(
            lambda: _when(history(http, f"{prefix}:42:commands"), lambda found: len(found) >= 2)
        )

    # Each once; in order per node, not across them (docs/mqtt.md, "Cluster").
    assert sorted(readings) == list(range(10))
    taken = [bridge_of(node).received for node in (first, second)]
    assert sum(taken) == 11  # ten readings and the marker, each by one node
    assert sent.status_code == 200
    assert kept == [1, envelope(commands, "marker")]
    assert [m.payload for m in await device.wait_for(2)] == [b"1", b"marker"]


# The broker goes away; pushwire goes away; the broker refuses.


async def test_messages_published_while_mosquitto_was_down_arrive_once(
    bridged: Bridged, prefix: str, tmp_path: Path
) -> None:
    require_mosquitto()
    mosquitto = OwnMosquitto(tmp_path / "mosquitto").start()
    sensor = Device(mosquitto.port, persistent=True).connect()
    topic = f"{prefix}/42/telemetry"
    try:
        server = await bridged(prefix, url=mosquitto.url)
        async with connect(ws_url(server) + f"?channel={prefix}:42:telemetry") as ws:
            await recv_until(ws, "subscribed")
            for n in range(10):
                await sensor.publish_confirmed(topic, str(n))
            before = await messages(ws, 10)
            await asyncio.sleep(0.2)  # the last PUBACKs reach mosquitto before it stops

            mosquitto.stop()
            await wait_until(lambda: not bridge_of(server).connected, message="the link to drop")
            async with httpx.AsyncClient(base_url=server.url) as http:
                health = (await http.get("/health")).json()
                refused = await http.post("/publish", json={"channel": f"{prefix}:x", "data": 1})
            for n in range(10, 20):
                sensor.publish(topic, str(n))  # waits in paho's queue
            mosquitto.start()
            after = await messages(ws, 10)
            with pytest.raises(TimeoutError):
                await recv_until(ws, "message", wait_seconds=0.3)  # and none twice
    finally:
        sensor.close()
        mosquitto.stop()

    readings = [frame["data"]["payload"] for frame in before + after]
    assert readings == list(range(20))
    assert health["status"] == "ok"
    assert health["mqtt"]["connected"] is False
    assert refused.status_code == 503
    assert refused.json()["error"] == "bridge_unavailable"


async def test_readings_sent_while_pushwire_restarts_reach_the_browser_after_it_returns(
    prefix: str, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "PUSHWIRE_API_KEY": API_KEY,
        "PUSHWIRE_DEMO": "false",
        "PUSHWIRE_MQTT_CLIENT_ID": unique("pw-"),
        "PUSHWIRE_MQTT_ROUTES": orjson.dumps([{"prefix": f"{prefix}:"}]).decode(),
        "PUSHWIRE_MQTT_SESSION_EXPIRY_SECONDS": "60",
        "PUSHWIRE_MQTT_RECONNECT_MIN_DELAY_SECONDS": "0.05",
    }
    server = ServerProcess(
        ["--mqtt", SHARED_URL, "--data-dir", str(tmp_path / "data")], env, tmp_path / "log"
    )
    server.start()
    sensor = Device().connect()
    channel, topic = f"{prefix}:42:telemetry", f"{prefix}/42/telemetry"
    try:
        await _wait_connected(server.url)
        async with connect(f"ws://127.0.0.1:{server.port}/ws?channel={channel}") as ws:
            await recv_until(ws, "subscribed")
            for n in range(5):
                await sensor.publish_confirmed(topic, str(n))
            seen = await messages(ws, 5)

            await server.terminate()
            for n in range(5, 15):
                await sensor.publish_confirmed(topic, str(n))  # queued for the bridge's session
            server.spawn()
            await server.wait_ready_async()

        async with connect(f"ws://127.0.0.1:{server.port}/ws") as ws:
            cursor = seen[-1]["id"]
            subscribe = {"type": "subscribe", "channel": channel, "cursor": cursor, "ref": 1}
            await ws.send(orjson.dumps(subscribe))
            subscribed = await recv_until(ws, "subscribed")
            missed = await messages(ws, 10)
    finally:
        sensor.close()
        server.stop()

    assert subscribed["recovered"] is True
    assert [frame["data"]["payload"] for frame in seen + missed] == list(range(15))


async def _wait_connected(url: str) -> None:
    async with httpx.AsyncClient(base_url=url) as http:

        async def connected() -> bool:
            return bool((await http.get("/health")).json()["mqtt"]["connected"])

        await wait_until(connected, message="the bridge to connect")


async def test_a_broker_refusing_the_login_is_reported_and_retried_while_pushwire_serves(
    bridged: Bridged, prefix: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    require_mosquitto()
    mosquitto = OwnMosquitto(tmp_path / "mosquitto", logins={"pushwire": "right"}).start()
    wrong = f"mqtt://pushwire:wrong@127.0.0.1:{mosquitto.port}"
    try:
        with caplog.at_level(logging.WARNING, logger="pushwire.mqtt"):
            server = await bridged(prefix, url=wrong, wait=False)
            await wait_until(
                lambda: "authori" in str(bridge_of(server).error), message="the refusal"
            )
            async with httpx.AsyncClient(base_url=server.url) as http:
                health = await http.get("/health")
                bridged_publish = await http.post(
                    "/publish", json={"channel": f"{prefix}:x", "data": 1}
                )
                plain_publish = await http.post("/publish", json={"channel": "plain", "data": 1})
            await wait_until(lambda: caplog.text.count("reconnecting") >= 2)
        right = await bridged(prefix, mqtt=bridge_settings(prefix, wrong.replace("wrong", "right")))
    finally:
        mosquitto.stop()

    assert health.status_code == 200
    assert health.json()["status"] == "ok"
    assert health.json()["mqtt"]["connected"] is False
    assert "authori" in health.json()["mqtt"]["error"]
    assert bridged_publish.status_code == 503
    assert plain_publish.status_code == 200
    assert "authori" in caplog.text
    assert bridge_of(right).connected


async def test_workers_each_have_a_session_and_take_each_message_once(
    prefix: str, tmp_path: Path, redis_prefix: Callable[[], str]
) -> None:
    require_service("redis", 6379)
    env = {
        **os.environ,
        "PUSHWIRE_API_KEY": API_KEY,
        "PUSHWIRE_DEMO": "false",
        "PUSHWIRE_BROKER": REDIS_URL,
        "PUSHWIRE_BROKER_PREFIX": redis_prefix(),
        "PUSHWIRE_MQTT_URL": SHARED_URL,
        "PUSHWIRE_MQTT_CLIENT_ID": unique("pw-"),
        "PUSHWIRE_MQTT_ROUTES": orjson.dumps([{"prefix": f"{prefix}:"}]).decode(),
        "PUSHWIRE_MQTT_SESSION_EXPIRY_SECONDS": "60",
    }
    server = ServerProcess(["--workers", "2"], env, tmp_path / "log").start()
    sensor = Device().connect()
    topic = f"{prefix}/42/telemetry"
    try:
        await wait_until(lambda: server.log().count("MQTT: connected") == 2)
        async with connect(f"ws://127.0.0.1:{server.port}/ws?channel={prefix}:42:telemetry") as ws:
            await recv_until(ws, "subscribed")
            for n in range(20):
                await sensor.publish_confirmed(topic, str(n))
            readings = [frame["data"]["payload"] for frame in await messages(ws, 20)]
            with pytest.raises(TimeoutError):
                await recv_until(ws, "message", wait_seconds=0.3)
    finally:
        sensor.close()
        log = server.stop()[1]

    assert sorted(readings) == list(range(20))
    assert f"{env['PUSHWIRE_MQTT_CLIENT_ID']}-w1'" in log
    assert f"{env['PUSHWIRE_MQTT_CLIENT_ID']}-w2'" in log


# paho-mqtt 2.2 does not close the socket of a TLS handshake that failed (it raises from
# Client._ssl_wrap_socket with the socket still open): it is closed when collected.
@pytest.mark.filterwarnings("ignore:unclosed <ssl.SSLSocket:ResourceWarning")
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
async def test_an_mqtts_broker_is_reached_over_tls_with_its_ca(
    bridged: Bridged, prefix: str, tmp_path: Path
) -> None:
    require_mosquitto()
    mosquitto = OwnMosquitto(tmp_path / "mosquitto", tls=True).start()
    try:
        untrusted = await bridged(prefix, url=mosquitto.url, wait=False)
        await wait_until(lambda: "CERTIFICATE_VERIFY_FAILED" in str(bridge_of(untrusted).error))
        await untrusted.stop()
        gc.collect()  # the sockets paho leaked go now, under this test's warning filters
        trusted = await bridged(
            prefix, mqtt=bridge_settings(prefix, mosquitto.url, ca_file=str(mosquitto.ca_file))
        )
        async with httpx.AsyncClient(base_url=trusted.url) as http:
            sent = await http.post("/publish", json={"channel": f"{prefix}:42:x", "data": 1})
    finally:
        mosquitto.stop()

    assert sent.status_code == 200
    assert bridge_of(trusted).sent == 1
