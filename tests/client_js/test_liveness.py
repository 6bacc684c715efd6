"""Dead connections are noticed (WebSocket heartbeat, SSE watchdog, poll timeout); offline."""

from __future__ import annotations

from typing import Any

import pytest

from tests.client_js.conftest import ServerLauncher
from tests.client_js.support import TRANSPORTS, Harness, needs_chromium

pytestmark = needs_chromium

# Short enough to notice a hung server in well under a second; how each transport tells.
LIVENESS: dict[str, tuple[dict[str, Any], str]] = {
    "ws": ({"pingIntervalMs": 200, "pingTimeoutMs": 300}, "ping_timeout"),
    "sse": ({"sseIdleTimeoutMs": 600}, "idle_timeout"),
    "poll": ({"pollTimeoutMs": 300}, "timeout"),
}


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_server_that_stops_answering_is_dropped_and_reconnected_to(
    harness: Harness, pushwire_server: ServerLauncher, transport: str
) -> None:
    # The server writes SSE keep-alive comments every 0.2 s, so a quiet stream stays open.
    server = pushwire_server(PUSHWIRE_SSE_PING_INTERVAL_SECONDS="0.2")
    options, expected_code = LIVENESS[transport]
    harness.start(server.url, ["news"], transports=[transport], connectTimeoutMs=500, **options)
    harness.wait_subscribed("news")
    server.publish("news", 1)
    harness.wait_data("news", 1)
    # Quiet for several heartbeats: a live connection is kept.
    harness.evaluate("new Promise((resolve) => setTimeout(resolve, 1000))")
    assert harness.events("close") == []

    server.pause()
    harness.wait("(code) => harness.events('close').some((e) => e.code === code)", expected_code)
    server.resume()
    harness.wait_event("open", 2)
    server.publish("news", 2)
    harness.wait_data("news", 2)

    assert harness.data("news") == [1, 2]
    assert harness.events("close")[0]["wasOpen"] is True


def test_offline_and_online_events_pause_and_resume_the_connection(
    harness: Harness, pushwire_server: ServerLauncher
) -> None:
    server = pushwire_server()
    harness.start(server.url, ["news"])
    harness.wait_subscribed("news")

    harness.page.context.set_offline(True)
    harness.wait("() => harness.client.state === 'offline'")
    server.publish("news", "while offline")
    harness.page.context.set_offline(False)
    harness.wait_event("open", 2)
    harness.wait_data("news", 1)

    assert [e["code"] for e in harness.events("close")] == ["offline"]
    assert harness.data("news") == ["while offline"]
    assert len(harness.events("connecting")) == 2
