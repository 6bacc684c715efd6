"""The admin page under traffic: its charts move, nothing overflows, desktop and phone.

With ``PUSHWIRE_UPDATE_SCREENSHOTS=1`` the desktop capture becomes docs/images/admin.png.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
from playwright.sync_api import Browser, Page, expect

from tests.admin.conftest import API_KEY, screenshots_dir
from tests.admin.test_admin_page import log_in, subscriber
from tests.client_js.support import needs_chromium
from tests.server_process import ServerProcess

pytestmark = needs_chromium


@contextmanager
def traffic(server: ServerProcess, unique: str) -> Iterator[None]:
    """Subscribers on a few channels and a publisher, bounded, until the block ends."""
    stop = threading.Event()

    def publish() -> None:
        with httpx.Client(base_url=server.url, headers={"X-API-Key": API_KEY}) as http:
            for n in range(2000):  # bounded: some 20 a second for at most 100 s
                if stop.wait(0.05):
                    return
                channel = f"room:lobby-{unique}" if n % 3 else f"news-{unique}"
                http.post("/api/publish", json={"channel": channel, "data": {"text": f"n{n}"}})

    with ExitStack() as stack:
        for name in ("ann", "bob", "cy"):
            stack.enter_context(subscriber(server, f"room:lobby-{unique}", user=f"{name}-{unique}"))
        for channel in ("news", "sport", "alerts:eu"):
            stack.enter_context(subscriber(server, f"{channel}-{unique}"))
        publisher = threading.Thread(target=publish, daemon=True)
        publisher.start()
        try:
            yield
        finally:
            stop.set()
            publisher.join(timeout=10)


def overflows(page: Page) -> bool:
    return bool(
        page.evaluate(
            "() => document.documentElement.scrollWidth > document.documentElement.clientWidth"
        )
    )


def test_under_traffic_the_charts_move_and_nothing_overflows(
    browser: Browser, admin_server: ServerProcess, unique: str, tmp_path: Path
) -> None:
    desktop = browser.new_context(viewport={"width": 1280, "height": 1180})
    phone = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    try:
        with traffic(admin_server, unique):
            pages = [context.new_page() for context in (desktop, phone)]
            for page in pages:
                page.goto(admin_server.url + "/admin")
                log_in(page)
                page.get_by_test_id("channel-search").fill(f"-{unique}")
                row = f'[data-testid="channel-row"][data-channel="room:lobby-{unique}"] button'
                page.locator(row).click()
            big = pages[0]
            expect(big.get_by_test_id("presence-member")).to_have_count(3, timeout=10_000)
            # A few seconds of samples, so that the charts have lines to draw.
            big.wait_for_timeout(6_000)
            rate = big.get_by_test_id("rate-now").text_content() or ""
            shot = tmp_path / "admin.png"
            big.screenshot(path=str(shot), full_page=True)

            assert not rate.startswith("0 published"), rate
            assert not any(overflows(page) for page in pages)
    finally:
        desktop.close()
        phone.close()
    if os.environ.get("PUSHWIRE_UPDATE_SCREENSHOTS") == "1":
        screenshots_dir().mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, screenshots_dir() / "admin.png")
