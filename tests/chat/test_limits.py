"""One person flooding the lobby meets the server's rate limit; everyone else carries on."""

from __future__ import annotations

from tests.chat.conftest import PersonFactory
from tests.client_js.support import needs_chromium
from tests.server_process import ServerProcess

pytestmark = needs_chromium

FLOOD = 250  # at once: over the server's 100 publishes per second per connection


def test_a_flood_is_told_to_slow_down_and_the_others_keep_chatting(
    chat_server: ServerProcess, new_person: PersonFactory
) -> None:
    jo = new_person(chat_server.url).join("Jo", "frog")
    kim = new_person(chat_server.url).join("Kim", "cat")
    lee = new_person(chat_server.url).join("Lee", "bear")
    for person in (jo, kim, lee):
        person.wait_online(jo.name, kim.name, lee.name)

    jo.page.evaluate(
        """(count) => {
          const input = document.querySelector('[data-testid="message-input"]');
          const send = document.querySelector('[data-testid="message-send"]');
          for (let n = 0; n < count; n++) {
            input.value = "flood " + n;
            send.click();
          }
        }""",
        FLOOD,
    )
    assert "slow down" in jo.error_text("send-error")
    kim.send("still talking")
    lee.wait_texts("still talking")
    lee.open_conversation(kim.name)
    lee.send("and in private")
    kim.wait_unread(lee.name, 1)

    kim.wait_texts("still talking", "flood 0")
    flood = [text for text in kim.texts() if text.startswith("flood ")]
    assert 0 < len(flood) < FLOOD
    assert len(set(flood)) == len(flood)
    assert jo.status()["state"] == "open"
    jo.send("sorry")
    kim.wait_texts("sorry")
