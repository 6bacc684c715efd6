"""The chat on a phone (360 px: the list or the conversation) and on a desktop, with the
screenshots in docs/images (rewritten with PUSHWIRE_UPDATE_SCREENSHOTS=1)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from playwright.sync_api import ViewportSize

from tests.chat.conftest import PersonFactory, ServerLauncher
from tests.chat.support import ChatPage
from tests.client_js.support import REPO, needs_chromium

pytestmark = needs_chromium

PHONE: ViewportSize = {"width": 360, "height": 740}
DESKTOP: ViewportSize = {"width": 1280, "height": 800}
IMAGES = REPO / "docs" / "images"


def _overflows(person: ChatPage) -> bool:
    return bool(
        person.page.evaluate(
            "() => document.documentElement.scrollWidth > document.documentElement.clientWidth"
        )
    )


def test_a_phone_shows_the_list_or_the_conversation(
    own_server: ServerLauncher, new_person: PersonFactory
) -> None:
    server = own_server()
    phone = new_person(server.url, viewport=PHONE)
    phone.open()
    assert not _overflows(phone)
    phone.join("Mo", "alien")
    desk = new_person(server.url).join("Nia", "owl")
    phone.wait_online("Mo", "Nia")

    desk.send("a message while the phone shows the list")
    phone.wait_unread("group", 1)
    list_view = (phone.page.get_by_test_id("online-list").is_visible(), _overflows(phone))
    phone.open_conversation("group")
    phone.wait_texts("a message while the phone shows the list")
    phone.wait_unread("group", 0)
    conversation_view = (
        phone.page.get_by_test_id("online-list").is_visible(),
        phone.page.get_by_test_id("message-input").is_visible(),
        _overflows(phone),
    )
    phone.send("x" * 300)  # one long word wraps too
    phone.wait_texts("x" * 300)
    long_word_overflows = _overflows(phone)
    phone.page.get_by_test_id("back").click()

    assert list_view == (True, False)
    assert conversation_view == (False, True, False)
    assert not long_word_overflows
    assert phone.page.get_by_test_id("online-list").is_visible()


def test_screenshots_of_a_conversation_on_a_desktop_and_a_phone(
    own_server: ServerLauncher, new_person: PersonFactory, tmp_path: Path
) -> None:
    server = own_server()
    ada = new_person(server.url, viewport=DESKTOP).join("Ada", "owl")
    bob = new_person(server.url, viewport=PHONE).join("Bob", "fox")
    chloe = new_person(server.url).join("Chloé", "panda")
    for person in (ada, bob, chloe):
        person.wait_online("Ada", "Bob", "Chloé")
    bob.open_conversation("group")
    lines = [
        (ada, "Morning all! Is the deploy still on for today?"),
        (bob, "Yes, after lunch. I'm writing the release notes now."),
        (chloe, "Great. I pushed the fix for the reconnect bug last night!"),
        (ada, "Nice, I'll test it over SSE and long-polling."),
        (bob, "It survived a server restart here: no message lost, none twice."),
    ]
    for person, text in lines:
        person.send(text)
        for reader in (ada, bob, chloe):
            reader.wait_texts(text)
    chloe.open_conversation("Ada")
    chloe.send("Got a minute after the standup?")
    chloe.send("Want to pair on the notification code.")
    ada.wait_unread("Chloé", 2)
    ada.open_conversation("Bob")
    ada.send("Can you send me the release notes draft?")
    bob.wait_unread("Ada", 1)
    bob.page.get_by_test_id("back").click()
    bob.open_conversation("Ada")
    bob.wait_texts("Can you send me the release notes draft?")
    bob.send("Sure, in five minutes.")
    ada.wait_texts("Sure, in five minutes.")
    ada.open_conversation("group")
    bob.page.get_by_test_id("back").click()
    bob.open_conversation("group")
    chloe.open_conversation("Bob")
    chloe.send("Bob, lunch at noon?")
    bob.wait_unread("Chloé", 1)
    ada.page.get_by_test_id("message-input").fill("Sounds good to me")

    desktop, phone = tmp_path / "chat-desktop.png", tmp_path / "chat-phone.png"
    ada.page.screenshot(path=str(desktop))
    bob.page.screenshot(path=str(phone))

    assert ada.unread("Chloé") == 2
    back = bob.page.get_by_test_id("back").text_content()
    assert back == "\u20391"  # the back arrow, then the unread count
    assert not _overflows(bob)
    if os.environ.get("PUSHWIRE_UPDATE_SCREENSHOTS") == "1":
        IMAGES.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(desktop, IMAGES / "chat-desktop.png")
        shutil.copyfile(phone, IMAGES / "chat-phone.png")
