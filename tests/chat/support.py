"""Driving the demo chat page: one ChatPage per person, each in its own browser context.

The page is served by pushwire itself (``/``), so it talks to the server on its own
origin, as it does for anyone who runs ``pushwire serve``. Only the page's test hooks
(``data-testid`` and the ``data-*`` attributes beside them) are used.
"""

from __future__ import annotations

from typing import Any

from playwright.sync_api import BrowserContext, Locator, Page

# Predicates for wait_for_function are written as functions: the page's CSP forbids
# eval(), which Playwright would need for a bare expression.
WAIT_MS = 15_000
# A reconnect after a server restart waits out pushwire.js's back-off (up to seconds).
RECONNECT_WAIT_MS = 40_000

# Counts the notifications the page creates (and still creates them, when it can).
COUNT_NOTIFICATIONS = """
(() => {
  window.__notifications = [];
  const Original = window.Notification;
  class CountingNotification {
    constructor(title, options) {
      window.__notifications.push({ title, body: options && options.body });
      this.onclick = null;
      try { this._real = new Original(title, options); } catch (error) { this._real = null; }
    }
    close() { if (this._real) this._real.close(); }
    static get permission() { return Original ? Original.permission : "denied"; }
    static requestPermission() { return Original.requestPermission(); }
  }
  window.Notification = CountingNotification;
})();
"""


class ChatPage:
    """One person's tab of the chat."""

    def __init__(self, context: BrowserContext, page: Page, base_url: str) -> None:
        self.context = context
        self.page = page
        self.base_url = base_url
        self.name = ""
        self.errors: list[str] = []
        page.on("pageerror", lambda error: self.errors.append(f"{error.name}: {error.message}"))

    # Getting in.

    def open(self, query: str = "") -> None:
        self.page.goto(self.base_url + "/" + query)

    def login(self, name: str, avatar: str = "cat") -> None:
        """Fill in the login form and submit it (the answer may be an error)."""
        self.page.get_by_test_id("login-name").fill(name)
        self.page.locator(f'[data-testid="login-avatar"][data-avatar="{avatar}"]').click()
        self.page.get_by_test_id("login-submit").click()

    def join(self, name: str, avatar: str = "cat", query: str = "") -> ChatPage:
        """Open the page, log in and wait for the connection."""
        self.open(query)
        self.login(name, avatar)
        self.name = name
        self.wait_connected()
        return self

    def wait_connected(self, opens: int = 1, timeout_ms: float = WAIT_MS) -> None:
        self.page.wait_for_function(
            """(opens) => {
              const status = document.querySelector('[data-testid="connection-status"]');
              return status && status.dataset.state === "open"
                && Number(status.dataset.opens) >= opens;
            }""",
            arg=opens,
            polling=50,
            timeout=timeout_ms,
        )

    def status(self) -> dict[str, Any]:
        result = self.page.evaluate(
            """() => {
              const status = document.querySelector('[data-testid="connection-status"]');
              return { state: status.dataset.state, opens: Number(status.dataset.opens),
                       transport: status.dataset.transport, text: status.textContent };
            }"""
        )
        assert isinstance(result, dict)
        return result

    # Conversations.

    def conversation(self, key: str) -> Locator:
        """The sidebar entry: "group", or the other person's name."""
        return self.page.locator(f'[data-testid="conversation"][data-conversation="{key}"]')

    def open_conversation(self, key: str) -> None:
        self.conversation(key).click()
        self.page.wait_for_function(
            """(key) => document.querySelector(
                 `[data-testid="conversation"][data-conversation="${CSS.escape(key)}"][aria-current="true"]`)""",
            arg=key,
            polling=50,
            timeout=WAIT_MS,
        )

    def unread(self, key: str) -> int:
        badge = self.conversation(key).get_by_test_id("unread-badge")
        return int(badge.get_attribute("data-count") or 0) if badge.count() else 0

    def wait_unread(self, key: str, count: int) -> None:
        self.page.wait_for_function(
            """([key, count]) => {
              const entry = document.querySelector(
                `[data-testid="conversation"][data-conversation="${CSS.escape(key)}"]`);
              const badge = entry && entry.querySelector('[data-testid="unread-badge"]');
              return (badge ? Number(badge.dataset.count) : 0) === count;
            }""",
            arg=[key, count],
            polling=50,
            timeout=WAIT_MS,
        )

    # Messages.

    def send(self, text: str) -> None:
        self.page.get_by_test_id("message-input").fill(text)
        self.page.get_by_test_id("message-send").click()

    def messages(self) -> list[dict[str, str]]:
        """The open conversation's messages: ``{"author", "text", "id"}``, oldest first."""
        result = self.page.evaluate(
            """() => [...document.querySelectorAll(
                 '[data-testid="message-list"] [data-testid="message"]')].map((m) => ({
                   author: m.dataset.author, id: m.dataset.id,
                   text: m.querySelector('[data-testid="message-text"]').textContent }))"""
        )
        assert isinstance(result, list)
        return result

    def texts(self) -> list[str]:
        return [message["text"] for message in self.messages()]

    def wait_texts(self, *texts: str, timeout_ms: float = WAIT_MS) -> None:
        """Wait until every one of ``texts`` is in the open conversation."""
        self.page.wait_for_function(
            """(texts) => {
              const nodes = document.querySelectorAll(
                '[data-testid="message-list"] [data-testid="message-text"]');
              const shown = new Set([...nodes].map((t) => t.textContent));
              return texts.every((text) => shown.has(text));
            }""",
            arg=list(texts),
            polling=50,
            timeout=timeout_ms,
        )

    # People.

    def online_names(self) -> list[str]:
        names = (
            self.page.get_by_test_id("online-list")
            .get_by_test_id("online-user")
            .evaluate_all("(users) => users.map((u) => u.dataset.userName)")
        )
        assert isinstance(names, list)
        return names

    def wait_online(self, *names: str, present: bool = True) -> None:
        """Wait until every one of ``names`` is in (or, ``present=False``, out of) the list."""
        self.page.wait_for_function(
            """([names, present]) => {
              const users = document.querySelectorAll(
                '[data-testid="online-list"] [data-testid="online-user"]');
              const shown = new Set([...users].map((u) => u.dataset.userName));
              return names.every((name) => shown.has(name) === present);
            }""",
            arg=[list(names), present],
            polling=50,
            timeout=WAIT_MS,
        )

    def error_text(self, test_id: str) -> str:
        """The visible text of ``login-error`` or ``send-error`` (waits for it to show)."""
        box = self.page.get_by_test_id(test_id)
        box.wait_for(state="visible", timeout=WAIT_MS)
        return box.inner_text()
