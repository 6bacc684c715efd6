"""A server killed and restarted mid-conversation: the chat reconnects and loses nothing."""

from __future__ import annotations

from collections import Counter

import pytest

from tests.chat.conftest import PersonFactory, ServerLauncher
from tests.chat.support import RECONNECT_WAIT_MS
from tests.client_js.support import needs_chromium

pytestmark = needs_chromium


@pytest.mark.parametrize("transport", ["ws", "sse"])
def test_a_killed_server_comes_back_with_every_message_once(
    own_server: ServerLauncher, new_person: PersonFactory, transport: str
) -> None:
    server = own_server()  # SQLite history and the demo's secret in its data directory
    query = f"?transport={transport}"
    ada = new_person(server.url).join("Ada", "owl", query=query)
    bob = new_person(server.url).join("Bob", "fox", query=query)
    for person in (ada, bob):
        person.wait_online(ada.name, bob.name)
    before = [f"before {n}" for n in range(5)]
    for text in before:
        ada.send(text)
    bob.wait_texts(*before)

    server.kill()
    for person in (ada, bob):
        person.page.wait_for_function(
            "() => document.querySelector('[data-testid=connection-status]').dataset.state"
            " !== 'open'"
        )
        assert "connect" in person.status()["text"]  # "reconnecting…" or "connecting…"
    server.start()
    # Published while the pages may still be away: recovery brings it.
    server.publish(
        "demo:lobby",
        {"text": "from the backend", "name": "Server", "avatar": "robot", "user": "", "at": 1},
    )
    for person in (ada, bob):
        person.wait_connected(opens=2, timeout_ms=RECONNECT_WAIT_MS)
    after = [f"after {n}" for n in range(5)]
    for text in after:
        bob.send(text)
    for person in (ada, bob):
        person.wait_texts(*before, "from the backend", *after)

    for person in (ada, bob):
        texts = person.texts()
        assert Counter(texts) == Counter([*before, "from the backend", *after])
        assert [t for t in texts if t.startswith(("before", "after"))] == [*before, *after]
        assert person.status()["state"] == "open"
    ada.page.reload()  # and history after the restart has the same conversation
    ada.wait_connected()
    ada.wait_texts(*before, "from the backend", *after)
    assert Counter(ada.texts()) == Counter([*before, "from the backend", *after])
