"""After a server crash pushwire.js resumes every channel from its cursor: none lost or doubled."""

from __future__ import annotations

import pytest

from tests.client_js.conftest import ServerLauncher
from tests.client_js.support import TRANSPORTS, Harness, needs_chromium

pytestmark = needs_chromium


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_killed_and_restarted_server_loses_and_duplicates_no_message(
    harness: Harness, pushwire_server: ServerLauncher, transport: str
) -> None:
    server = pushwire_server()  # SQLite history under a data dir that outlives the process
    harness.start(server.url, ["seq", "other"], transports=[transport])
    harness.wait_subscribed("seq", "other")
    for number in range(10):
        server.publish("seq", number)
    harness.wait_data("seq", 10)

    # Mid-stream: kill as soon as the last of a burst is stored, delivered or not.
    for number in range(10, 20):
        server.publish("seq", number)
    server.kill()
    server.start()
    harness.wait_event("open", 2)
    for number in range(20, 30):
        server.publish("seq", number)
    # Again, and this time publish while the client is surely away: hold it offline.
    server.kill()
    harness.wait_event("close", 2)
    harness.page.context.set_offline(True)
    harness.wait("() => harness.client.state === 'offline'")
    server.start()
    for number in range(30, 40):
        server.publish("seq", number)
    server.publish("other", "still here")
    harness.page.context.set_offline(False)
    harness.wait_event("open", 3)
    for number in range(40, 50):
        server.publish("seq", number)
    server.publish("seq", "end")
    harness.wait("() => harness.data('seq').includes('end')")

    assert harness.data("seq") == [*range(50), "end"]
    assert harness.data("other") == ["still here"]
    assert harness.gaps() == []
    assert [e["transport"] for e in harness.events("open")] == [transport] * 3


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_history_lost_in_a_restart_is_reported_as_a_gap(
    harness: Harness, pushwire_server: ServerLauncher, transport: str
) -> None:
    server = pushwire_server("--memory")  # a restart starts a new epoch: old cursors are void
    harness.start(server.url, ["news"], transports=[transport])
    harness.wait_subscribed("news")
    server.publish("news", "before")
    harness.wait_data("news", 1)

    server.kill()
    server.start()
    harness.wait("() => harness.log.gaps.length > 0")
    server.publish("news", "after")
    harness.wait_data("news", 2)

    assert harness.data("news") == ["before", "after"]
    assert [gap["channel"] for gap in harness.gaps()] == ["news"]
