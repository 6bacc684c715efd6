"""Garbage from a server never throws: pushwire.js reports it as an error event and carries on.

Fake servers play pushwire here, so that they can send what a real one never would.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

import pytest
from websockets.sync.server import Server, ServerConnection, serve

from tests.client_js.conftest import ServerLauncher
from tests.client_js.support import Harness, needs_chromium
from tests.server_process import free_port

pytestmark = needs_chromium


def _message(number: int) -> dict[str, Any]:
    return {"channel": "news", "id": f"e-{number}", "data": number}


WS_GARBAGE: list[str | bytes] = [
    "not json",
    "[1, 2]",
    "null",
    "42",
    '{"no": "type"}',
    '{"type": "wat"}',
    '{"type": "message"}',
    '{"type": "message", "channel": "news"}',
    '{"type": "published", "ref": 99999}',
    '{"type": "subscribed", "channel": "news", "ref": 99999, "cursor": "e-0"}',
    '{"type": "error"}',
    b"\x00\x01 binary",
]


def _fake_ws(connection: ServerConnection) -> None:
    """Answer the client's subscribe between garbage, send a message twice, then hold on."""
    subscribe = json.loads(connection.recv(timeout=10))
    assert subscribe["type"] == "subscribe"
    for frame in WS_GARBAGE:
        connection.send(frame)
    connection.send(json.dumps({"type": "subscribed", "channel": "news", "ref": subscribe["ref"]}))
    connection.send(
        json.dumps(
            {"type": "subscribed", "channel": "news", "ref": subscribe["ref"], "cursor": "e-0"}
        )
    )
    for frame in WS_GARBAGE:
        connection.send(frame)
    for number in (1, 1, 2):  # a duplicate in between
        connection.send(json.dumps({"type": "message", **_message(number)}))
    connection.send(json.dumps({"type": "message", "channel": "elsewhere", "id": "x-1", "data": 0}))
    connection.send(json.dumps({"type": "message", **_message(3)}))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            frame = json.loads(connection.recv(timeout=1))
        except TimeoutError:
            continue
        except Exception:
            return
        if frame.get("type") == "ping":
            connection.send(json.dumps({"type": "pong", "ref": frame["ref"]}))


@pytest.fixture
def fake_ws() -> Iterator[Server]:
    with serve(_fake_ws, "127.0.0.1", 0) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        yield server
        server.shutdown()
        thread.join(timeout=5)


class _FakeHttp(BaseHTTPRequestHandler):
    """``/poll`` and ``/sse`` answers mixing garbage with valid messages."""

    polls: ClassVar[list[str]] = []
    stopping = threading.Event()

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        query = parse_qs(parts.query)
        if parts.path == "/sse":
            self._sse()
        elif parts.path == "/poll":
            self._poll(query)
        else:
            self._send(404, b'{"error": "not_found", "message": "no"}')

    def _poll(self, query: dict[str, list[str]]) -> None:
        cursor = query.get("cursor", [None])[0]
        self.polls.append(f"{cursor}/{query['timeout'][0]}")
        if cursor is None:  # the client asks where the channel stands now
            body: Any = {"messages": [], "cursor": "e-0"}
        elif cursor == "e-0":
            body = {
                "messages": ["junk", None, {"channel": "news"}, _message(1), _message(1)],
                "cursor": "e-1",
                "gaps": "not a list",
            }
        elif cursor == "e-1" and self.polls.count("e-1/0") + self.polls.count("e-1/25") == 1:
            self._send(200, b"<html>a proxy's error page</html>")
            return
        elif cursor == "e-1":
            body = {"messages": [_message(2)], "cursor": "e-2"}
        else:
            self.stopping.wait(0.2)  # a long poll with nothing new
            body = {"messages": [], "cursor": cursor}
        self._send(200, json.dumps(body).encode())

    def _sse(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Access-Control-Allow-Origin", "*")
        self.end_headers()
        events = [
            ": a comment",
            "retry: soon",
            "a line without a colon",
            "id: e-0.too.many.parts",
            "data: not json",
            "data: [1]",
            "event: pushwire.gap\ndata: {}",
            'data: {"channel": "news"}',
            "id: e-1\ndata: " + json.dumps(_message(1)),
            "id: e-1\ndata: " + json.dumps(_message(1)),
            # A named event: EventSource.onmessage would never see it.
            "id: e-2\nevent: named\ndata: " + json.dumps({**_message(2), "event": "named"}),
        ]
        self.wfile.write("".join(event + "\n\n" for event in events).encode())
        self.wfile.flush()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not self.stopping.wait(0.2):
            try:
                self.wfile.write(b": keep-alive\n\n")
                self.wfile.flush()
            except OSError:
                return

    def _send(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Access-Control-Allow-Origin", "*")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def fake_http() -> Iterator[str]:
    _FakeHttp.polls.clear()
    _FakeHttp.stopping.clear()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeHttp)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    _FakeHttp.stopping.set()
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def _bad_frame_count(harness: Harness) -> int:
    return sum(1 for e in harness.events("error") if e["error"]["code"] == "bad_frame")


def test_garbage_websocket_frames_are_reported_and_valid_ones_still_delivered(
    harness: Harness, pushwire_server: ServerLauncher, fake_ws: Server
) -> None:
    script_server = pushwire_server("--memory")
    ws_url = f"ws://127.0.0.1:{fake_ws.socket.getsockname()[1]}/ws"
    nowhere = f"http://127.0.0.1:{free_port()}"

    harness.start(nowhere, ["news"], script_from=script_server.url, transports=["ws"], wsUrl=ws_url)
    harness.wait_data("news", 3)

    assert harness.data("news") == [1, 2, 3]
    # Each round has 8 malformed frames. A message for a channel whose subscribe is not
    # answered yet is dropped quietly (first round), later it is malformed (second round).
    # Answers to unknown refs are ignored. One "subscribed" lacks its cursor.
    assert _bad_frame_count(harness) == 8 + 9 + 1
    # {"type": "error"} without a ref is an error from the server, reported as such.
    other_errors = [e["error"]["code"] for e in harness.events("error")]
    assert [code for code in other_errors if code != "bad_frame"] == ["unknown", "unknown"]
    assert harness.evaluate("harness.client.state") == "open"
    assert len(harness.events("open")) == 1


def test_garbage_sse_events_are_reported_and_valid_ones_still_delivered(
    harness: Harness, pushwire_server: ServerLauncher, fake_http: str
) -> None:
    script_server = pushwire_server("--memory")

    harness.start(fake_http, ["news"], script_from=script_server.url, transports=["sse"])
    harness.wait_data("news", 2)

    assert harness.data("news") == [1, 2]
    assert harness.messages()[1]["event"] == "named"
    # Bad stream cursor, two bad data lines, an empty gap, a message without an id.
    assert _bad_frame_count(harness) == 5
    assert harness.gaps() == []
    assert harness.evaluate("harness.client.state") == "open"


def test_garbage_poll_answers_are_reported_and_polling_carries_on(
    harness: Harness, pushwire_server: ServerLauncher, fake_http: str
) -> None:
    script_server = pushwire_server("--memory")

    harness.start(fake_http, ["news"], script_from=script_server.url, transports=["poll"])
    harness.wait_data("news", 2)

    assert harness.data("news") == [1, 2]
    # Three bad messages, gaps that are not a list, a page that is not JSON.
    assert _bad_frame_count(harness) == 5
    assert [e["code"] for e in harness.events("close")] == ["bad_frame"]
    harness.wait_event("open", 2)
