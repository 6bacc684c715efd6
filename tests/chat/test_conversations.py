"""Three people in the demo chat: the lobby, private messages, who is online, unread, XSS."""

from __future__ import annotations

import pytest

from tests.chat.conftest import PersonFactory
from tests.chat.support import ChatPage
from tests.client_js.support import needs_chromium
from tests.server_process import ServerProcess

pytestmark = needs_chromium


@pytest.fixture
def three(chat_server: ServerProcess, new_person: PersonFactory, unique: str) -> list[ChatPage]:
    """Ada, Bob and Cy, logged in, each seeing the other two online."""
    people = [
        new_person(chat_server.url, notifications=True).join(f"{name} {unique}", avatar)
        for name, avatar in (("Ada", "owl"), ("Bob", "fox"), ("Cy", "robot"))
    ]
    for person in people:
        person.wait_online(*(p.name for p in people))
    return people


def test_a_group_message_reaches_the_other_two(three: list[ChatPage]) -> None:
    ada, bob, cy = three

    ada.send("hello, lobby")

    for person in (bob, cy):
        person.wait_texts("hello, lobby")
        assert [m["author"] for m in person.messages() if m["text"] == "hello, lobby"] == [ada.name]
    ada.wait_texts("hello, lobby")
    assert ada.page.locator('[data-testid="message"].mine').count() >= 1


def test_a_private_message_reaches_only_its_addressee_and_raises_their_badge(
    three: list[ChatPage],
) -> None:
    ada, bob, cy = three
    cy.send("a public line")
    ada.wait_texts("a public line")

    ada.open_conversation(bob.name)
    ada.send("just for you, Bob")
    bob.wait_unread(ada.name, 1)
    bob.open_conversation(ada.name)
    bob.wait_texts("just for you, Bob")
    bob.wait_unread(ada.name, 0)
    bob.send("thanks, Ada")
    ada.wait_texts("just for you, Bob", "thanks, Ada")
    cy.send("after the secret")
    for person in (ada, bob):
        person.wait_unread("group", 1)

    ids = cy.page.evaluate(
        "() => Object.fromEntries([...document.querySelectorAll('[data-testid=online-user]')]"
        ".map((u) => [u.dataset.userName, u.dataset.user]))"
    )
    cy_channels = cy.page.evaluate(
        "() => [...document.querySelectorAll('[data-testid=conversation]')]"
        ".map((c) => c.dataset.channel)"
    )
    assert bob.texts() == ["just for you, Bob", "thanks, Ada"]
    assert ada.unread(bob.name) == 0
    assert cy.unread(ada.name) == 0
    assert cy.unread(bob.name) == 0
    assert "just for you, Bob" not in cy.page.get_by_test_id("message-list").inner_text()
    assert "dm:" + ",".join(sorted([ids[ada.name], ids[bob.name]])) not in cy_channels
    assert "dm:" + ",".join(sorted([ids[ada.name], ids[cy.name]])) in cy_channels
    assert bob.page.title() == "(1) pushwire chat"


def test_the_online_list_follows_logins_and_closed_tabs(
    chat_server: ServerProcess, new_person: PersonFactory, three: list[ChatPage], unique: str
) -> None:
    ada, bob, cy = three

    dee = new_person(chat_server.url).join(f"Dee {unique}", "panda")
    for person in (ada, bob, cy, dee):
        person.wait_online(dee.name, ada.name)
    cy.page.close()  # Cy's only tab
    for person in (ada, bob, dee):
        person.wait_online(cy.name, present=False)

    assert dee.name in bob.online_names()
    assert bob.conversation(cy.name).count() == 0


def test_what_someone_wrote_before_leaving_stays_until_read(three: list[ChatPage]) -> None:
    ada, bob, cy = three
    cy.open_conversation(bob.name)
    cy.send("call me when you are back")
    bob.wait_unread(cy.name, 1)

    cy.context.close()
    bob.wait_online(cy.name, present=False)
    bob.wait_unread(cy.name, 1)
    title = bob.page.title()
    bob.open_conversation(cy.name)
    bob.wait_texts("call me when you are back")
    ada.wait_online(cy.name, present=False)

    assert title == "(1) pushwire chat"
    assert bob.page.title() == "pushwire chat"
    assert ada.conversation(cy.name).count() == 0
    assert "offline" in bob.page.locator("#pane-subtitle").inner_text()


def test_log_out_leaves_at_once_and_shows_the_login_again(three: list[ChatPage]) -> None:
    ada, bob, cy = three

    cy.page.get_by_test_id("logout").click()

    for person in (ada, bob):
        person.wait_online(cy.name, present=False)
    cy.page.get_by_test_id("login-submit").wait_for(state="visible")
    assert cy.page.evaluate("sessionStorage.length + localStorage.length") <= 1  # only "asked"


def test_html_in_a_message_is_text_and_runs_nothing(three: list[ChatPage]) -> None:
    ada, bob, _ = three
    attack = '<img src=x onerror="window.__xss = 1"><script>window.__xss = 2</script><b>bold</b>'

    ada.send(attack)

    bob.wait_texts(attack)
    ada.wait_texts(attack)
    for person in (ada, bob):
        message_list = person.page.get_by_test_id("message-list")
        assert message_list.locator("img, script, b").count() == 0
        assert person.page.evaluate("window.__xss") is None


def test_a_message_of_10000_characters_is_shown_whole(three: list[ChatPage]) -> None:
    ada, bob, _ = three
    long_text = ("0123456789" * 1000)[:-4] + " end"  # 10,000 characters, no spaces but one

    ada.send(long_text)

    bob.wait_texts(long_text)
    width = bob.page.evaluate(
        "() => { const l = document.querySelector('[data-testid=message-list]');"
        " return [l.scrollWidth, l.clientWidth]; }"
    )
    assert len(long_text) == 10_000
    assert width[0] <= width[1]  # it wraps: no sideways scrolling


def test_a_message_in_a_conversation_not_on_screen_makes_a_notification(
    three: list[ChatPage],
) -> None:
    ada, bob, _ = three
    ada.send("in the open lobby")
    bob.wait_texts("in the open lobby")

    ada.open_conversation(bob.name)
    ada.send("ping, Bob")
    bob.page.wait_for_function("() => window.__notifications.length >= 1")

    notes = bob.page.evaluate("window.__notifications")
    assert bob.page.evaluate("Notification.permission") == "granted"
    assert notes == [{"title": ada.name, "body": "ping, Bob"}]  # none for the lobby on screen
    assert ada.page.evaluate("window.__notifications") == []


def test_a_reload_and_a_second_tab_keep_the_person_and_the_conversation(
    three: list[ChatPage],
) -> None:
    ada, bob, _ = three
    ada.open_conversation(bob.name)
    ada.send("before the reload")
    bob.send("in the lobby, before the reload")
    ada.wait_texts("before the reload")

    ada.page.reload()
    ada.wait_connected()
    ada.wait_texts("in the lobby, before the reload")
    ada.open_conversation(bob.name)
    ada.wait_texts("before the reload")
    second = ChatPage(ada.context, ada.context.new_page(), ada.base_url)
    second.open()
    second.wait_connected()
    second.open_conversation(bob.name)
    second.wait_texts("before the reload")
    second.page.close()

    assert ada.texts().count("before the reload") == 1
    assert ada.page.evaluate("document.querySelector('#me-name').textContent") == ada.name
    bob.wait_online(ada.name)  # closing one of two tabs is no leave
    assert bob.online_names().count(ada.name) == 1


def test_the_author_is_the_servers_from_when_there_is_one(three: list[ChatPage]) -> None:
    ada = three[0]

    authors = ada.page.evaluate(
        """async () => {
          const { chatMessageOf } = await import("/chat/conversations.js");
          const data = { text: "hi", name: "Mallory", avatar: "fox", user: "demo-bad", at: 1 };
          const claimed = chatMessageOf({ channel: "demo:lobby", id: "1-1", data });
          const verified = chatMessageOf({ channel: "demo:lobby", id: "1-2", data,
            from: { user: "demo-real", info: { name: "Real", avatar: "owl" } } });
          return [claimed, verified].map((m) => [m.user, m.name, m.avatar, m.verified]);
        }"""
    )

    assert authors == [["demo-bad", "Mallory", "fox", False], ["demo-real", "Real", "owl", True]]
