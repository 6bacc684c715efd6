"""examples/mqtt as its README runs it: Mosquitto, pushwire with the example's config, the
simulated device and the page in headless Chromium. The screenshot in docs/images is
rewritten with PUSHWIRE_UPDATE_SCREENSHOTS=1."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.client_js.support import chromium, needs_chromium
from tests.mosquitto import Device, require_mosquitto, unique
from tests.server_process import ServerProcess

REPO = Path(__file__).resolve().parent.parent.parent
EXAMPLE = REPO / "examples" / "mqtt"
IMAGES = REPO / "docs" / "images"
UPDATE_SCREENSHOT = os.environ.get("PUSHWIRE_UPDATE_SCREENSHOTS") == "1"

pytestmark = [pytest.mark.integration, needs_chromium]


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def static_site() -> Iterator[str]:
    """``python -m http.server --directory examples/mqtt``, in a thread."""
    handler = functools.partial(_Quiet, directory=str(EXAMPLE))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_the_page_shows_the_device_live_and_its_command_reaches_the_device(
    static_site: str, tmp_path: Path
) -> None:
    require_mosquitto()
    device_id = "42" if UPDATE_SCREENSHOT else unique("d")
    env = {
        **os.environ,
        "PUSHWIRE_API_KEY": "example-key",
        "PUSHWIRE_ALLOWED_ORIGINS": static_site,
        "PUSHWIRE_MQTT_CLIENT_ID": unique("pushwire-example-"),
    }
    server = ServerProcess(
        ["--config", str(EXAMPLE / "pushwire.toml"), "--memory"], env, tmp_path / "server.log"
    ).start()
    device = subprocess.Popen(
        [sys.executable, str(EXAMPLE / "device.py"), "--id", device_id, "--interval", "0.1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        with chromium() as browser:
            page = browser.new_page(viewport={"width": 900, "height": 470})
            page.goto(f"{static_site}/?server={server.url}&device={device_id}")
            expect(page.locator("#state")).to_have_text("open")
            expect(page.get_by_test_id("led")).to_have_text("LED off")
            expect(page.locator("#count")).not_to_have_text("0")

            page.get_by_test_id("led-on").click()

            expect(page.get_by_test_id("ack")).to_contain_text("the broker has")
            expect(page.get_by_test_id("led")).to_have_text("LED on")
            page.wait_for_function("Number(document.getElementById('count').textContent) >= 60")
            page.screenshot(path=str(tmp_path / "mqtt-example.png"))
    finally:
        device.terminate()
        output, _ = device.communicate(timeout=10)
        server.stop()
        forget = Device().connect()
        forget.publish(f"devices/{device_id}/state", b"", retain=True).wait_for_publish(5)
        forget.close()

    assert "command {'led': 'on'}: led on" in output
    if UPDATE_SCREENSHOT:
        IMAGES.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(tmp_path / "mqtt-example.png", IMAGES / "mqtt-example.png")
