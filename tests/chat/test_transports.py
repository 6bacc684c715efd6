"""``/?transport=sse`` and ``/?transport=poll``: the same chat over each fallback transport."""

from __future__ import annotations

import pytest

from tests.chat.conftest import PersonFactory, ServerLauncher
from tests.client_js.support import needs_chromium
from tests.server_process import ServerProcess

pytestmark = needs_chromium


@pytest.mark.parametrize("transport", ["sse", "poll"])
def test_a_conversation_over_a_forced_transport(
    chat_server: ServerProcess, new_person: PersonFactory, unique: str, transport: str
) -> None:
    query = f"?transport={transport}"
    gil = new_person(chat_server.url).join(f"Gil {unique}", "bear", query=query)
    hal = new_person(chat_server.url).join(f"Hal {unique}", "panda", query=query)
    ivy = new_person(chat_server.url).join(f"Ivy {unique}", "cat")  # on the WebSocket
    for person in (gil, hal, ivy):
        person.wait_online(gil.name, hal.name, ivy.name)

    gil.send(f"lobby over {transport}")
    for person in (gil, hal, ivy):
        person.wait_texts(f"lobby over {transport}")
    hal.open_conversation(gil.name)
    hal.send("a private word")
    gil.wait_unread(hal.name, 1)
    gil.open_conversation(hal.name)
    gil.send("got it")
    hal.wait_texts("a private word", "got it")
    ivy.send("from the WebSocket")

    for person in (gil, hal):
        assert person.status()["transport"] == transport
    assert ivy.status()["transport"] == "ws"
    gil.wait_texts("a private word", "got it")
    assert gil.texts() == ["a private word", "got it"]
    hal.wait_unread("group", 1)


def test_logging_out_over_polling_leaves_at_once(
    own_server: ServerLauncher, new_person: PersonFactory, unique: str
) -> None:
    # Pollers stay present for a grace between polls: a minute here, far longer than the
    # wait below, so only the goodbye a log out sends can make Jan disappear in time.
    server = own_server(PUSHWIRE_PRESENCE_POLL_GRACE_SECONDS="60")
    jan = new_person(server.url).join(f"Jan {unique}", "fox", query="?transport=poll")
    kim = new_person(server.url).join(f"Kim {unique}", "owl")
    kim.wait_online(jan.name)

    jan.page.get_by_test_id("logout").click()

    kim.wait_online(jan.name, present=False)
