"""pushwire.js with connection tokens: ``token``, ``getToken``, refresh, and the server's ends.

Tokens are minted here with PyJWT, as a backend would, for a server started with
``PUSHWIRE_TOKEN_SECRET``. (Presence and join/leave are covered by the unit tests in
clients/js/test until the server has them.)
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from tests.client_js.conftest import ServerLauncher
from tests.client_js.support import (
    API_KEY,
    BROWSER_REQUIRED,
    REPO,
    TRANSPORTS,
    Harness,
    needs_chromium,
)
from tests.server_process import ServerProcess

pytestmark = needs_chromium

SECRET = "s" * 64  # 64 bytes, HS256
JS_CLIENT = REPO / "clients" / "js"
# No reconnect within this long (many times the harness's 50-500 ms back-off) means none.
QUIET_SECONDS = 1.5


def mint(user: str = "alice", *, ttl: float = 3600) -> str:
    return jwt.encode({"sub": user, "exp": time.time() + ttl}, SECRET, algorithm="HS256")


def minter(*ttls: float) -> Callable[[], str]:
    """Tokens for alice: the first with ``ttls[0]`` seconds to live, and so on; then an hour."""
    remaining = list(ttls)

    def next_token() -> str:
        return mint(ttl=remaining.pop(0) if remaining else 3600)

    return next_token


def token_server(launch: ServerLauncher, *args: str, **env: str) -> ServerProcess:
    return launch(*args, PUSHWIRE_TOKEN_SECRET=SECRET, **env)


def api(server: ServerProcess, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = httpx.post(server.url + path, json=body, headers={"X-API-Key": API_KEY}, timeout=5)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert isinstance(answer, dict)
    return answer


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_token_opens_the_users_own_channel_on_every_transport(
    harness: Harness, pushwire_server: ServerLauncher, transport: str
) -> None:
    server = token_server(pushwire_server, "--memory")
    harness.start(server.url, ["user:alice"], transports=[transport], token=mint())
    harness.wait_subscribed("user:alice")

    server.publish("user:alice", {"to": "alice"})
    harness.wait_data("user:alice", 1)

    assert harness.data("user:alice") == [{"to": "alice"}]
    assert [event["transport"] for event in harness.events("open")] == [transport]
    assert harness.events("error") == []


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_publish_presents_the_token_on_every_transport(
    harness: Harness, pushwire_server: ServerLauncher, transport: str
) -> None:
    rules = '[{"prefix": "members:", "subscribe": "authenticated", "publish": "authenticated"}]'
    server = token_server(pushwire_server, "--memory", PUSHWIRE_CHANNELS=rules)
    harness.start(server.url, ["members:chat"], transports=[transport], token=mint())
    harness.wait_subscribed("members:chat")

    result = harness.publish("members:chat", "hello")
    harness.wait_data("members:chat", 1)

    assert "answer" in result, result
    assert harness.data("members:chat") == ["hello"]


def test_get_token_is_called_again_when_the_client_reconnects_to_a_restarted_server(
    harness: Harness, pushwire_server: ServerLauncher
) -> None:
    server = token_server(pushwire_server)
    harness.start_minting(server.url, minter(), ["user:alice"], transports=["ws"])
    harness.wait_subscribed("user:alice")
    calls_before = harness.evaluate("harness.tokenCalls")

    server.kill()
    server.start()
    harness.wait_subscribed("user:alice", times=2)
    server.publish("user:alice", "after the restart")
    harness.wait_data("user:alice", 1)

    assert calls_before == 1
    assert harness.evaluate("harness.tokenCalls") >= 2
    assert harness.events("error") == []


def test_a_token_that_expires_is_refreshed_through_get_token_on_the_open_websocket(
    harness: Harness, pushwire_server: ServerLauncher
) -> None:
    server = token_server(pushwire_server, "--memory", PUSHWIRE_TOKEN_REFRESH_TIMEOUT_SECONDS="5")
    harness.start_minting(server.url, minter(2), ["user:alice"], transports=["ws"])
    harness.wait_subscribed("user:alice")
    server.publish("user:alice", 1)
    harness.wait_data("user:alice", 1)

    harness.wait("() => harness.tokenCalls >= 2", timeout_ms=10_000)
    # Past the first token's expiry plus the refresh timeout: a refused or missing
    # refresh would have closed the connection with 4401 by now.
    time.sleep(5.5)
    server.publish("user:alice", 2)
    harness.wait_data("user:alice", 2)

    assert harness.data("user:alice") == [1, 2]
    assert len(harness.events("open")) == 1
    assert harness.events("close") == []
    assert harness.events("error") == []


def test_a_token_refused_at_the_websocket_door_is_replaced_through_get_token(
    harness: Harness, pushwire_server: ServerLauncher
) -> None:
    server = token_server(pushwire_server, "--memory")
    harness.start_minting(server.url, minter(-60), ["user:alice"])
    harness.wait_subscribed("user:alice")

    server.publish("user:alice", "in")
    harness.wait_data("user:alice", 1)

    assert harness.evaluate("harness.tokenCalls") >= 2
    assert [event["transport"] for event in harness.events("open")] == ["ws"]


def test_an_expired_fixed_token_stops_the_client_with_token_expired(
    harness: Harness, pushwire_server: ServerLauncher
) -> None:
    server = token_server(pushwire_server, "--memory")
    # The refused WebSocket upgrade is a 1006 to the page; the SSE fallback reads the 401.
    harness.start(server.url, ["user:alice"], token=mint(ttl=-60))
    harness.wait("() => harness.client.state === 'closed'")

    errors = [event["error"]["code"] for event in harness.events("error")]
    assert errors[-1] == "token_expired"
    assert harness.events("open") == []
    assert harness.events("close")[-1]["willReconnect"] is False


@pytest.mark.parametrize("transport", ["ws", "sse"])
def test_api_disconnect_stops_the_client_without_reconnecting(
    harness: Harness, pushwire_server: ServerLauncher, transport: str
) -> None:
    server = token_server(pushwire_server, "--memory")
    harness.start(server.url, ["user:alice"], transports=[transport], token=mint())
    harness.wait_subscribed("user:alice")

    answer = api(server, "/api/disconnect", {"user": "alice"})
    harness.wait_event("disconnected")
    time.sleep(QUIET_SECONDS)

    assert answer["disconnected"] == 1
    ends = [(event["code"], event["reason"]) for event in harness.events("disconnected")]
    assert ends == [(4000, "disconnected by server")]
    assert harness.evaluate("harness.client.state") == "closed"
    assert len(harness.events("connecting")) == 1


def test_api_unsubscribe_ends_the_subscription_and_it_stays_ended(
    harness: Harness, pushwire_server: ServerLauncher
) -> None:
    server = token_server(pushwire_server, "--memory")
    harness.start(server.url, ["user:alice", "news"], transports=["ws"], token=mint())
    harness.wait_subscribed("user:alice", "news")

    api(server, "/api/unsubscribe", {"user": "alice", "channel": "user:alice"})
    harness.wait("() => harness.log.unsubscribed.length === 1")
    server.publish("user:alice", "not for a closed subscription")
    server.publish("news", "still here")
    harness.wait_data("news", 1)

    assert harness.evaluate("harness.log.unsubscribed") == [{"channel": "user:alice"}]
    assert harness.data("user:alice") == []
    assert harness.evaluate("harness.client.state") == "open"


def _bundle_fetch_event_source(out_dir: Path) -> Path:
    """@microsoft/fetch-event-source (from clients/js/node_modules) as one classic script.

    Its ESM build imports "./fetch" without an extension, which browsers cannot load
    as it is, so esbuild bundles it, defining ``window.FetchEventSource``.
    """
    entry = JS_CLIENT / "node_modules" / "@microsoft" / "fetch-event-source" / "lib" / "esm"
    esbuild = JS_CLIENT / "node_modules" / ".bin" / "esbuild"
    if not (entry / "index.js").exists() or not esbuild.exists():
        message = "clients/js/node_modules is missing: run npm ci in clients/js"
        if BROWSER_REQUIRED:
            pytest.fail(message)
        pytest.skip(message)
    node = shutil.which("node")
    assert node is not None, "esbuild needs node"
    out = out_dir / "fetch-event-source.js"
    subprocess.run(
        [
            str(esbuild),
            str(entry / "index.js"),
            "--bundle",
            "--format=iife",
            "--global-name=FetchEventSource",
            f"--outfile={out}",
            "--log-level=warning",
        ],
        check=True,
        timeout=60,
    )
    return out


def test_fetch_event_source_receives_over_post_sse_with_a_bearer_token(
    harness: Harness, pushwire_server: ServerLauncher, tmp_path: Path
) -> None:
    script = _bundle_fetch_event_source(tmp_path)
    server = token_server(pushwire_server, "--memory")
    harness.load(server.url)
    harness.page.add_script_tag(path=str(script))
    harness.evaluate(
        """([url, token]) => {
            window.received = [];
            window.opened = 0;
            window.controller = new AbortController();
            FetchEventSource.fetchEventSource(url + "/sse", {
                method: "POST",
                headers: { Authorization: "Bearer " + token, "Content-Type": "application/json" },
                body: JSON.stringify({ channels: ["user:alice"] }),
                signal: controller.signal,
                openWhenHidden: true,
                onopen: async (response) => {
                    if (!response.ok) throw new Error("HTTP " + response.status);
                    window.opened += 1;
                },
                // The stream opens with an id-only event: no data, nothing to parse.
                onmessage: (event) => {
                    if (event.data) received.push({ id: event.id, data: JSON.parse(event.data) });
                },
                onerror: (error) => { throw error; },
            });
        }""",
        [server.url, mint()],
    )
    harness.wait("() => window.opened === 1")
    server.wait_for_subscriber("user:alice")

    message_id = server.publish("user:alice", {"via": "fetch-event-source"})
    harness.wait("() => window.received.some((event) => event.data.channel === 'user:alice')")
    harness.evaluate("controller.abort()")

    messages = [event["data"] for event in harness.evaluate("window.received")]
    assert messages == [
        {
            "channel": "user:alice",
            "id": message_id,
            "data": {"via": "fetch-event-source"},
        }
    ]
