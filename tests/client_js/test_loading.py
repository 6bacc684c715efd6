"""pushwire.js loads as a classic script and from a module, and the example page works."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import httpx
import pytest

from tests.client_js.conftest import ServerLauncher
from tests.client_js.support import REPO, Harness, needs_chromium

pytestmark = needs_chromium

SCREENSHOT = REPO / "docs" / "images" / "js-client-example.png"


def test_the_server_serves_the_script_to_any_origin(pushwire_server: ServerLauncher) -> None:
    server = pushwire_server("--memory")

    response = httpx.get(server.url + "/pushwire.js", headers={"Origin": "https://example.com"})

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/javascript")
    assert response.headers["access-control-allow-origin"] == "*"
    # Built by esbuild, which writes `var Pushwire = class extends EventTarget`.
    assert "globalThis.Pushwire = Pushwire" in response.text


@pytest.mark.parametrize("load", ["classic", "module"])
def test_the_client_works_loaded_either_way(
    harness: Harness, pushwire_server: ServerLauncher, load: str
) -> None:
    server = pushwire_server("--memory")

    harness.start(server.url, ["news"], load=load)
    harness.wait_subscribed("news")
    server.publish("news", load)
    harness.wait_data("news", 1)

    assert harness.evaluate("window.loadedAs") == load
    assert harness.data("news") == [load]
    assert harness.evaluate("typeof Pushwire.PushwireError") == "function"


def test_the_example_page_shows_state_and_messages(
    harness: Harness, pushwire_server: ServerLauncher, tmp_path: Path
) -> None:
    server = pushwire_server("--memory")
    page = harness.page
    page.set_viewport_size({"width": 720, "height": 360})

    page.goto(f"{harness.site.url}/examples/js-client/index.html?server={server.url}&channel=news")
    page.wait_for_function("document.getElementById('state').textContent === 'open'")
    server.wait_for_subscriber("news")
    server.publish("news", {"text": "Deploy finished"}, event="deploy")
    server.publish("news", {"text": "Build 412 is green"}, event="ci")
    server.publish("news", {"text": "Coffee is ready"})
    page.fill("#text", "Hello from the browser")
    page.click("button")
    page.wait_for_function("document.querySelectorAll('#feed li').length === 4")
    shot = tmp_path / "example.png"
    page.screenshot(path=str(shot))

    items = page.locator("#feed li").all_inner_texts()
    assert "Hello from the browser" in items[0]
    assert "Deploy finished" in items[-1]
    assert page.text_content("#transport") == "ws"
    if os.environ.get("PUSHWIRE_UPDATE_SCREENSHOTS") == "1":
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, SCREENSHOT)


def test_the_module_flavour_exports_the_class(
    harness: Harness, pushwire_server: ServerLauncher
) -> None:
    server = pushwire_server("--memory")
    page = harness.page
    page.goto(f"{harness.site.url}/examples/js-client/index.html?server={server.url}&channel=x")

    exported = page.evaluate(
        "async (url) => { const m = await import(url + '/pushwire.mjs');"
        " return m.Pushwire === m.default && typeof m.Pushwire === 'function'; }",
        server.url,
    )

    assert exported is True
