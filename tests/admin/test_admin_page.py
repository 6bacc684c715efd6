"""The admin page in headless Chromium, against a real ``pushwire serve``.

The test's own clients are plain WebSockets (the ``websockets`` client), so what the
page shows is checked against connections it did not make itself.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
from playwright.sync_api import Page, expect
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from pushwire.server.tokens import TokenVerifier
from tests.admin.conftest import API_KEY, TOKEN_SECRET
from tests.client_js.support import needs_chromium
from tests.server_process import ServerProcess

pytestmark = needs_chromium
WAIT_MS = 10_000


@contextmanager
def subscriber(
    server: ServerProcess, channel: str, user: str | None = None
) -> Iterator[ClientConnection]:
    """A WebSocket on ``channel`` (as ``user``, with a token), its ``subscribed`` read."""
    url = server.url.replace("http", "ws") + f"/ws?channel={channel}"
    if user is not None:
        token = TokenVerifier("HS256", TOKEN_SECRET).mint(
            user, info={"name": user}, ttl_seconds=600
        )
        url += f"&token={token}"
    # An unbounded queue: a subscriber the test never reads still sees its close at once.
    with connect(url, max_queue=None) as ws:
        assert json.loads(ws.recv(timeout=5))["type"] == "subscribed"
        yield ws


def close_code(ws: ClientConnection) -> int | None:
    """Read on (a join or a leave may come first) until the server closes: its close code."""
    try:
        while True:
            ws.recv(timeout=5)
    except ConnectionClosed as closed:
        return None if closed.rcvd is None else closed.rcvd.code


def log_in(page: Page, key: str = API_KEY) -> None:
    page.get_by_test_id("admin-key").fill(key)
    page.get_by_test_id("admin-login").click()


def test_logged_in_it_shows_the_node_and_a_connection_made_by_the_test(
    page: Page, admin_server: ServerProcess, unique: str
) -> None:
    with subscriber(admin_server, f"watch-{unique}"):
        log_in(page)

        row = page.locator(f'[data-testid="channel-row"][data-channel="watch-{unique}"]')
        expect(row).to_have_attribute("data-subscribers", "1", timeout=WAIT_MS)
        expect(row).to_contain_text("1 subscriber")
        node = page.get_by_test_id("node-row")
        expect(node).to_have_count(1)
        expect(node).to_contain_text("0.1.0")
        expect(page.get_by_test_id("node-uptime")).to_contain_text(" s")
        expect(page.get_by_test_id("connections-total")).not_to_have_text("")

    expect(row).to_have_count(0, timeout=WAIT_MS)  # gone with its last subscriber


def test_the_key_is_kept_for_the_tab_until_logging_out(page: Page) -> None:
    log_in(page)
    expect(page.get_by_test_id("dashboard")).to_be_visible()

    page.reload()
    expect(page.get_by_test_id("dashboard")).to_be_visible(timeout=WAIT_MS)
    page.get_by_test_id("logout").click()

    expect(page.get_by_test_id("admin-key")).to_be_visible()
    assert page.evaluate("() => sessionStorage.length") == 0


def test_a_message_published_from_the_form_reaches_the_test_subscriber(
    page: Page, admin_server: ServerProcess, unique: str
) -> None:
    channel = f"news-{unique}"
    with subscriber(admin_server, channel) as ws:
        log_in(page)
        page.get_by_test_id("publish-channel").fill(channel)
        page.get_by_test_id("publish-data").fill('{"text": "from the admin page"}')
        page.get_by_test_id("publish-submit").click()

        message = json.loads(ws.recv(timeout=5))

    assert (message["channel"], message["data"]) == (channel, {"text": "from the admin page"})
    expect(page.get_by_test_id("publish-result")).to_contain_text(f"Published to {channel}")


def test_invalid_json_is_refused_by_the_page_and_nothing_is_published(
    page: Page, admin_server: ServerProcess, unique: str
) -> None:
    channel = f"quiet-{unique}"
    with subscriber(admin_server, channel) as ws:
        log_in(page)
        page.get_by_test_id("publish-channel").fill(channel)
        page.get_by_test_id("publish-data").fill("{text: not json")
        page.get_by_test_id("publish-submit").click()

        result = page.get_by_test_id("publish-result")
        expect(result).to_contain_text("not valid JSON")
        with pytest.raises(TimeoutError):
            ws.recv(timeout=0.5)
    history = httpx.get(
        admin_server.url + f"/api/history?channel={channel}", headers={"X-API-Key": API_KEY}
    ).json()

    expect(result).to_contain_text("nothing was published")
    assert history["messages"] == []


def test_disconnecting_a_user_closes_their_websocket_with_4000(
    page: Page, admin_server: ServerProcess, unique: str
) -> None:
    user = f"ann-{unique}"
    with (
        subscriber(admin_server, f"room:{unique}", user=user) as ann,
        subscriber(admin_server, f"room:{unique}", user=f"bob-{unique}") as bob,
    ):
        log_in(page)
        page.get_by_test_id("disconnect-user").fill(user)
        page.get_by_test_id("disconnect-submit").click()

        code = close_code(ann)
        bob.ping().wait(5)  # the other user is still connected

    assert code == 4000
    expect(page.get_by_test_id("disconnect-result")).to_contain_text(
        f"Disconnected 1 connection of {user}"
    )


def test_disconnecting_a_user_who_is_not_connected_says_so(
    page: Page, admin_server: ServerProcess, unique: str
) -> None:
    with subscriber(admin_server, f"room:{unique}", user=f"cy-{unique}") as cy:
        log_in(page)
        page.get_by_test_id("disconnect-user").fill(f"nobody-{unique}")
        page.get_by_test_id("disconnect-submit").click()

        result = page.get_by_test_id("disconnect-result")
        expect(result).to_contain_text("has no open connection")
        cy.ping().wait(5)

    expect(result).to_have_attribute("data-outcome", "error")


def test_a_wrong_key_shows_a_clear_message_and_reveals_nothing(
    page: Page, admin_server: ServerProcess, unique: str
) -> None:
    asked: list[str] = []
    page.on("request", lambda request: asked.append(request.url))
    with subscriber(admin_server, f"secret-{unique}"):
        log_in(page, "not-the-key")

        error = page.get_by_test_id("admin-error")
        expect(error).to_be_visible()
        expect(error).to_contain_text("This API key was refused")

    expect(page.get_by_test_id("dashboard")).to_be_hidden()
    expect(page.get_by_test_id("channel-row")).to_have_count(0)
    expect(page.get_by_test_id("node-row")).to_have_count(0)
    assert f"secret-{unique}" not in page.content()
    api_calls = [url.removeprefix(admin_server.url) for url in asked if "/api/" in url]
    assert api_calls == ["/api/info"]  # asked once, refused, and nothing else
    assert page.evaluate("() => sessionStorage.length") == 0


def test_a_channel_shows_its_presence_and_history_then_live_messages(
    page: Page, admin_server: ServerProcess, unique: str
) -> None:
    channel = f"room:lobby-{unique}"
    admin_server.publish(channel, {"text": "before"})
    with subscriber(admin_server, channel, user=f"dee-{unique}"):
        log_in(page)
        page.get_by_test_id("channel-search").fill(f"lobby-{unique}")
        expect(page.get_by_test_id("channel-row")).to_have_count(1, timeout=WAIT_MS)
        page.locator(f'[data-testid="channel-row"][data-channel="{channel}"] button').click()

        expect(page.get_by_test_id("presence-member")).to_have_text(
            [f"dee-{unique} (dee-{unique}) · 1 connection"], timeout=WAIT_MS
        )
        items = page.get_by_test_id("history-item")
        expect(items).to_have_count(1)
        expect(page.get_by_test_id("live-note")).to_have_text("(live)", timeout=WAIT_MS)
        admin_server.publish(channel, {"text": "live"})
        expect(items).to_have_count(2)
        expect(items.last).to_contain_text('{"text":"live"}')
