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


def test_a_login_near_its_expiry_is_refreshed_for_the_same_person(
    chat_server: ServerProcess, new_person: PersonFactory, unique: str
) -> None:
    kit = new_person(chat_server.url).join(f"Kit {unique}", "owl")
    before = kit.page.evaluate("() => JSON.parse(sessionStorage.getItem('pushwire-chat:login'))")
    kit.page.evaluate(
        """() => {
          const login = JSON.parse(sessionStorage.getItem("pushwire-chat:login"));
          login.expiresAt = Date.now() + 1000;  // as if an hour had gone by
          sessionStorage.setItem("pushwire-chat:login", JSON.stringify(login));
        }"""
    )

    kit.page.reload()
    kit.wait_connected()
    # (The token itself may be the same: one minted in the same second is.)
    kit.page.wait_for_function(
        """() => JSON.parse(sessionStorage.getItem("pushwire-chat:login")).expiresAt
                 > Date.now() + 50 * 60 * 1000"""
    )

    after = kit.page.evaluate("() => JSON.parse(sessionStorage.getItem('pushwire-chat:login'))")
    assert after["user"] == before["user"]
    assert after["info"] == before["info"]
    assert after["expiresAt"] > before["expiresAt"] - 60_000
    kit.wait_online(kit.name)


def test_a_login_the_server_no_longer_accepts_goes_back_to_the_login_screen(
    chat_server: ServerProcess, new_person: PersonFactory, unique: str
) -> None:
    lou = new_person(chat_server.url).join(f"Lou {unique}", "bear")
    lou.page.evaluate(
        """() => {
          const login = JSON.parse(sessionStorage.getItem("pushwire-chat:login"));
          login.token = login.token.slice(0, -4) + "AAAA";  // a signature that fails
          for (const s of [sessionStorage, localStorage])
            s.setItem("pushwire-chat:login", JSON.stringify(login));
        }"""
    )

    lou.page.reload()

    assert "log in again" in lou.error_text("login-error")
    assert lou.page.evaluate("() => sessionStorage.getItem('pushwire-chat:login')") is None
