"""Helpers for the browser-client tests: pushwire server processes, a static site, the page.

The browser is the Debian Chromium at /usr/bin/chromium, driven by Playwright; its
own browser downloads are never used. Pages come from a local static server, so the
client talks to pushwire cross-origin, as it does in production.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# .ci/run sets this: in CI a missing browser fails the tests instead of skipping them.
BROWSER_REQUIRED = os.environ.get("PUSHWIRE_REQUIRE_BROWSER") == "1"
needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists() and not BROWSER_REQUIRED,
    reason="browser tests need Chromium at /usr/bin/chromium (apt-get install chromium)",
)


@contextlib.contextmanager
def chromium() -> Iterator[Browser]:
    """Debian's headless Chromium, driven by Playwright (which never downloads its own)."""
    if not CHROMIUM.exists():
        pytest.fail(f"PUSHWIRE_REQUIRE_BROWSER=1 but there is no {CHROMIUM}")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


API_KEY = "client-js-test-key"
TRANSPORTS = ("ws", "sse", "poll")
HERE = Path(__file__).parent
REPO = HERE.parent.parent
EXAMPLE_DIR = REPO / "examples" / "js-client"


class StaticSite:
    """Serves the harness page (with pushwire.js loaded one way or the other) and the example."""

    def __init__(self) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _StaticHandler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> StaticSite:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


class _StaticHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        query = parse_qs(parts.query)
        if parts.path == "/harness.html":
            server = query["server"][0]
            body = _harness_page(server, query.get("load", ["classic"])[0]).encode()
            self._send(200, "text/html; charset=utf-8", body)
        elif parts.path == "/harness.js":
            self._send(200, "text/javascript", (HERE / "harness.js").read_bytes())
        elif parts.path == "/examples/js-client/index.html":
            self._send(200, "text/html; charset=utf-8", (EXAMPLE_DIR / "index.html").read_bytes())
        else:
            self._send(404, "text/plain", b"not found")

    def _send(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep pytest output clean


def _harness_page(server: str, load: str) -> str:
    script_url = json.dumps(server + "/pushwire.js")
    if load == "module":
        # The documented module usage: a side-effect import, then the global.
        tag = (
            f'<script type="module">import {script_url};\n'
            "const { Pushwire } = globalThis;\n"
            "window.loadedAs = typeof Pushwire === 'function' ? 'module' : 'missing';</script>"
        )
    else:
        tag = (
            f"<script src={script_url}></script>\n"
            "<script>window.loadedAs = typeof Pushwire === 'function' ? 'classic' : 'missing';"
            "</script>"
        )
    return (HERE / "harness.html").read_text().replace("<!--pushwire.js-->", tag)


class Harness:
    """One page running one Pushwire client, and waits on what it recorded."""

    def __init__(self, page: Page, site: StaticSite) -> None:
        self.page = page
        self.site = site

    def load(self, server_url: str, load: str = "classic") -> str:
        self.page.goto(f"{self.site.url}/harness.html?server={server_url}&load={load}")
        loaded_as = self.page.evaluate("window.loadedAs")
        assert isinstance(loaded_as, str)
        return loaded_as

    def start(
        self,
        server_url: str,
        channels: Sequence[str] = (),
        *,
        load: str = "classic",
        script_from: str | None = None,
        **options: Any,
    ) -> None:
        """Load the page and start a client on ``server_url`` (options as in the JS API).

        pushwire.js comes from ``script_from`` if given (when ``server_url`` is not a server).
        """
        self.load(script_from or server_url, load)
        options.setdefault("minReconnectDelayMs", 50)
        options.setdefault("maxReconnectDelayMs", 500)
        self.page.evaluate(
            "([url, options, channels]) => harness.start(url, options, channels)",
            [server_url, options, list(channels)],
        )

    def start_minting(
        self,
        server_url: str,
        mint: Callable[[], str],
        channels: Sequence[str] = (),
        **options: Any,
    ) -> None:
        """Like :meth:`start`, with ``getToken`` asking ``mint`` (in the test) for each token.

        The page counts the calls: ``harness.tokenCalls``.
        """
        self.page.expose_function("mintToken", mint)
        self.load(server_url)
        options.setdefault("minReconnectDelayMs", 50)
        options.setdefault("maxReconnectDelayMs", 500)
        self.page.evaluate(
            "([url, options, channels]) => harness.startMinting(url, options, channels)",
            [server_url, options, list(channels)],
        )

    def evaluate(self, expression: str, arg: Any = None) -> Any:
        return self.page.evaluate(expression, arg)

    def wait(self, expression: str, arg: Any = None, timeout_ms: float = 10_000) -> None:
        """Poll ``expression`` (a JS function of ``arg``) until truthy; fail at the timeout."""
        self.page.wait_for_function(expression, arg=arg, polling=25, timeout=timeout_ms)

    def wait_subscribed(self, *channels: str, times: int = 1) -> None:
        self.wait(
            "([channels, times]) => channels.every((c) =>"
            " harness.log.subscribed.filter((s) => s.channel === c).length >= times)",
            [list(channels), times],
        )

    def wait_data(self, channel: str, count: int, timeout_ms: float = 10_000) -> list[Any]:
        self.wait(
            "([channel, count]) => harness.data(channel).length >= count",
            [channel, count],
            timeout_ms,
        )
        return self.data(channel)

    def wait_event(self, type_: str, count: int = 1, timeout_ms: float = 10_000) -> None:
        self.wait(
            "([type, count]) => harness.events(type).length >= count", [type_, count], timeout_ms
        )

    def data(self, channel: str) -> list[Any]:
        result = self.evaluate("(channel) => harness.data(channel)", channel)
        assert isinstance(result, list)
        return result

    def messages(self) -> list[dict[str, Any]]:
        result = self.evaluate("harness.log.messages")
        assert isinstance(result, list)
        return result

    def events(self, type_: str) -> list[dict[str, Any]]:
        result = self.evaluate("(type) => harness.events(type)", type_)
        assert isinstance(result, list)
        return result

    def gaps(self) -> list[dict[str, Any]]:
        result = self.evaluate("harness.log.gaps")
        assert isinstance(result, list)
        return result

    def publish(self, channel: str, data: Any, **options: Any) -> dict[str, Any]:
        """``pw.publish()`` from the page: ``{"answer": ...}`` or ``{"error": ...}``."""
        result = self.evaluate(
            "([channel, data, options]) => harness.publish(channel, data, options)",
            [channel, data, options],
        )
        assert isinstance(result, dict)
        return result
