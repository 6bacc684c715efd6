"""When WebSocket (or SSE) cannot connect, pushwire.js falls back to the next transport."""

from __future__ import annotations

from playwright.sync_api import Route

from tests.client_js.conftest import ServerLauncher
from tests.client_js.support import Harness, needs_chromium
from tests.server_process import free_port

pytestmark = needs_chromium


def test_falls_back_to_sse_when_websocket_cannot_connect(
    harness: Harness, pushwire_server: ServerLauncher
) -> None:
    server = pushwire_server()
    closed = f"ws://127.0.0.1:{free_port()}/ws"
    harness.start(server.url, ["news"], wsUrl=closed, transportAttempts=2)
    harness.wait_subscribed("news")

    server.publish("news", "over sse")
    published = harness.publish("news", "from the page")
    harness.wait_data("news", 2)

    assert [e["transport"] for e in harness.events("connecting")] == ["ws", "ws", "sse"]
    assert [e["transport"] for e in harness.events("open")] == ["sse"]
    assert harness.data("news") == ["over sse", "from the page"]
    assert published["answer"]["channel"] == "news"


def test_falls_back_to_polling_when_sse_is_blocked_too(
    harness: Harness, pushwire_server: ServerLauncher
) -> None:
    server = pushwire_server()

    def block(route: Route) -> None:
        route.abort("blockedbyclient")

    harness.page.route("**/sse?**", block)
    closed = f"ws://127.0.0.1:{free_port()}/ws"
    harness.start(server.url, ["news"], wsUrl=closed, transportAttempts=1)
    harness.wait_subscribed("news")

    server.publish("news", "over polling")
    harness.wait_data("news", 1)

    assert [e["transport"] for e in harness.events("connecting")] == ["ws", "sse", "poll"]
    assert [e["transport"] for e in harness.events("open")] == ["poll"]


def test_the_transports_option_forces_one_transport(
    harness: Harness, pushwire_server: ServerLauncher
) -> None:
    server = pushwire_server()

    harness.start(server.url, ["news"], transports=["poll"])
    harness.wait_subscribed("news")

    assert [e["transport"] for e in harness.events("connecting")] == ["poll"]
    assert harness.evaluate("harness.client.transport") == "poll"


def test_gives_up_after_max_attempts_and_says_so(
    harness: Harness, pushwire_server: ServerLauncher
) -> None:
    server = pushwire_server()
    nowhere = f"http://127.0.0.1:{free_port()}"

    harness.start(nowhere, ["news"], script_from=server.url, maxAttempts=3)
    harness.wait("() => harness.client.state === 'closed'")

    assert len(harness.events("connecting")) == 3
    assert [e["error"]["code"] for e in harness.events("error")] == ["gave_up"]
    assert harness.events("close")[-1]["willReconnect"] is False
