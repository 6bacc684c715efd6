"""The shape of the pushwire.js API: misuse is refused at once, close() and connect() work."""

from __future__ import annotations

from tests.client_js.conftest import ServerLauncher
from tests.client_js.support import Harness, needs_chromium

pytestmark = needs_chromium


def _thrown(harness: Harness, expression: str) -> str:
    result = harness.evaluate(
        f"() => {{ try {{ {expression}; return 'nothing'; }}"
        " catch (error) { return error.name + ': ' + error.message; } }"
    )
    assert isinstance(result, str)
    return result


def test_misuse_throws_a_type_error_at_once(
    harness: Harness, pushwire_server: ServerLauncher
) -> None:
    server = pushwire_server("--memory")
    harness.load(server.url)
    make = f"new Pushwire({server.url!r}, {{ autoConnect: false"

    unknown_option = _thrown(harness, make + ", pingInterval: 5 })")
    unknown_transport = _thrown(harness, make + ", transports: ['websocket'] })")
    bad_channel = _thrown(harness, make + " }).subscribe('no spaces please')")
    fine = _thrown(harness, make + ", wsUrl: undefined }).subscribe('a.b:c@d/e#f,g=h+i-j_k')")

    assert unknown_option == 'TypeError: unknown option "pingInterval"'
    assert unknown_transport == 'TypeError: unknown transport "websocket"'
    assert bad_channel == 'TypeError: invalid channel name "no spaces please"'
    assert fine == "nothing"


def test_close_stops_and_connect_resumes_with_the_same_subscriptions(
    harness: Harness, pushwire_server: ServerLauncher
) -> None:
    server = pushwire_server("--memory")
    harness.start(server.url, ["news"])
    harness.wait_subscribed("news")
    server.publish("news", 1)
    harness.wait_data("news", 1)

    harness.evaluate("harness.client.close()")
    server.publish("news", 2)  # missed while closed, recovered after connect()
    harness.evaluate("harness.client.connect()")
    harness.wait_subscribed("news", times=2)
    harness.wait_data("news", 2)

    states = [event["state"] for event in harness.events("state")]
    assert states == ["connecting", "open", "closed", "connecting", "open"]
    assert harness.events("close")[0]["code"] == "closed"
    assert harness.data("news") == [1, 2]


def test_a_second_subscription_to_a_confirmed_channel_is_confirmed_too(
    harness: Harness, pushwire_server: ServerLauncher
) -> None:
    server = pushwire_server("--memory")
    harness.start(server.url, ["news"])
    harness.wait_subscribed("news")

    harness.evaluate("harness.subscribe('news')")
    harness.wait_subscribed("news", times=2)

    assert harness.evaluate("harness.client.state") == "open"
