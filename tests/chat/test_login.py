"""The login screen: the server's refusals shown on screen, any name shown as text."""

from __future__ import annotations

import pytest

from tests.chat.conftest import PersonFactory
from tests.client_js.support import needs_chromium
from tests.server_process import ServerProcess

pytestmark = needs_chromium


@pytest.mark.parametrize(
    ("name", "message"),
    [("", "choose a name"), ("   ", "choose a name"), ("x" * 200, "at most 40 characters")],
)
def test_a_bad_name_gets_the_servers_message_on_screen(
    chat_server: ServerProcess, new_person: PersonFactory, name: str, message: str
) -> None:
    person = new_person(chat_server.url)
    person.open()

    person.login(name)

    assert message in person.error_text("login-error").lower()
    assert person.page.get_by_test_id("message-input").is_hidden()


def test_names_with_html_and_emoji_are_shown_as_text(
    chat_server: ServerProcess, new_person: PersonFactory, unique: str
) -> None:
    tricky = f"<img src=x onerror=__xss=1> 👩‍👩‍👧 {unique}"  # within 40 characters
    eve = new_person(chat_server.url).join(tricky, "alien")
    fay = new_person(chat_server.url).join(f"Fay {unique}", "frog")

    fay.wait_online(tricky)
    eve.send("hi from a tricky name")
    fay.wait_texts("hi from a tricky name")

    assert [m["author"] for m in fay.messages() if m["text"] == "hi from a tricky name"] == [tricky]
    assert fay.conversation(tricky).inner_text().startswith(tricky)
    for person in (eve, fay):
        assert person.page.locator("body img").count() == 0
        assert person.page.evaluate("window.__xss") is None
