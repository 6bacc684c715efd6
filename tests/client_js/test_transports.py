"""pushwire.js receives and publishes over each transport: WebSocket, SSE and long-polling."""

from __future__ import annotations

import pytest

from tests.client_js.conftest import ServerLauncher
from tests.client_js.support import TRANSPORTS, Harness, needs_chromium

pytestmark = needs_chromium


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_messages_arrive_in_order_on_every_channel(
    harness: Harness, pushwire_server: ServerLauncher, transport: str
) -> None:
    server = pushwire_server()
    harness.start(server.url, ["news", "alerts"], transports=[transport])
    harness.wait_subscribed("news", "alerts")

    ids = []
    for number in range(5):
        ids.append(server.publish("news", {"n": number}, event="story" if number % 2 else None))
        ids.append(server.publish("alerts", number))
    harness.wait_data("news", 5)
    harness.wait_data("alerts", 5)

    assert [event["transport"] for event in harness.events("open")] == [transport]
    assert harness.data("news") == [{"n": number} for number in range(5)]
    assert harness.data("alerts") == list(range(5))
    messages = harness.messages()
    assert sorted(message["id"] for message in messages) == sorted(ids)
    assert [m.get("event") for m in messages if m["channel"] == "news"] == [
        None,
        "story",
        None,
        "story",
        None,
    ]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_publish_resolves_with_the_servers_answer_and_the_message_arrives(
    harness: Harness, pushwire_server: ServerLauncher, transport: str
) -> None:
    server = pushwire_server()
    harness.start(server.url, ["chat"], transports=[transport])
    harness.wait_subscribed("chat")

    result = harness.publish("chat", {"text": "hello"}, event="said")
    harness.wait_data("chat", 1)

    answer = result["answer"]
    assert answer["channel"] == "chat"
    assert harness.messages() == [
        {"channel": "chat", "id": answer["id"], "event": "said", "data": {"text": "hello"}}
    ]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_publish_rejects_with_the_servers_error(
    harness: Harness, pushwire_server: ServerLauncher, transport: str
) -> None:
    rules = '[{"prefix": "announce:", "publish": "none"}]'
    server = pushwire_server(PUSHWIRE_CHANNELS=rules)
    harness.start(server.url, ["chat"], transports=[transport])
    harness.wait_event("open")

    result = harness.publish("announce:all", "not allowed")

    assert result["error"]["name"] == "PushwireError"
    assert result["error"]["code"] == "permission_denied"
    assert harness.evaluate("harness.client.state") == "open"


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_subscribing_and_closing_channels_later_loses_and_repeats_nothing(
    harness: Harness, pushwire_server: ServerLauncher, transport: str
) -> None:
    server = pushwire_server()
    harness.start(server.url, ["a"], transports=[transport])
    harness.wait_subscribed("a")
    server.publish("a", 1)
    harness.wait_data("a", 1)

    harness.evaluate("harness.subscribe('b')")
    server.publish("a", 2)  # may land while SSE and polling reopen with the new channel set
    harness.wait_subscribed("b")
    server.publish("b", 1)
    server.publish("a", 3)
    harness.wait_data("b", 1)
    harness.wait_data("a", 3)
    harness.evaluate("harness.unsubscribe('a')")
    server.publish("a", 4)
    server.publish("b", 2)
    harness.wait_data("b", 2)

    assert harness.data("a") == [1, 2, 3]
    assert harness.data("b") == [1, 2]
    assert len(harness.events("open")) == 1


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_subscription_can_resume_after_a_stored_cursor(
    harness: Harness, pushwire_server: ServerLauncher, transport: str
) -> None:
    server = pushwire_server()
    first = server.publish("log", "one")
    server.publish("log", "two")
    server.publish("log", "three")

    harness.start(server.url, transports=[transport])
    harness.evaluate("(cursor) => harness.subscribe('log', { cursor })", first)
    harness.wait_data("log", 2)
    server.publish("log", "four")
    harness.wait_data("log", 3)

    assert harness.data("log") == ["two", "three", "four"]
    assert harness.gaps() == []


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_two_subscriptions_share_a_channel_and_close_independently(
    harness: Harness, pushwire_server: ServerLauncher, transport: str
) -> None:
    server = pushwire_server("--memory")
    harness.start(server.url, transports=[transport])
    harness.evaluate(
        """() => {
            window.second = [];
            harness.subscribe("news");
            const push = (message) => second.push(message.data);
            window.secondSubscription = harness.client.subscribe("news", push);
        }"""
    )
    harness.wait_subscribed("news")

    server.publish("news", 1)
    harness.wait("() => second.length === 1 && harness.data('news').length === 1")
    harness.evaluate("secondSubscription.close()")
    server.publish("news", 2)
    harness.wait_data("news", 2)

    assert harness.evaluate("second") == [1]
    assert harness.data("news") == [1, 2]
    assert [e["error"]["code"] for e in harness.events("error")] == []


def test_debug_logging_goes_to_the_console_only_when_asked(
    harness: Harness, pushwire_server: ServerLauncher
) -> None:
    server = pushwire_server("--memory")
    lines: list[str] = []
    harness.page.on("console", lambda message: lines.append(message.text))

    harness.start(server.url, ["quiet"])
    harness.wait_subscribed("quiet")
    quiet = [line for line in lines if line.startswith("[pushwire]")]
    harness.evaluate("new Pushwire(harness.client.url, { debug: true }).subscribe('loud')")
    harness.page.wait_for_event(
        "console", lambda message: message.text.startswith("[pushwire] send"), timeout=10_000
    )

    assert quiet == []
