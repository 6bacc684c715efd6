"""Fuzzing HTTP against a running server: random request heads, queries, headers, bodies.

Well-formed requests with random methods, paths, ``channel``/``cursor``/``timeout``/
``token``/``lastEventId``/``limit``/``since`` parameters, ``Last-Event-ID``, ``Origin``,
``Authorization`` and ``X-API-Key`` headers and JSON-ish bodies get an HTTP answer (a JSON
error body with a known code for every error status); garbage and truncated heads get
one or a close. After every example the witness subscriber still receives, and nothing
was logged at ERROR. Derandomized (see tests.fuzz.strategies).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any
from urllib.parse import quote

import httptools
import orjson
import pytest
from hypothesis import given, settings, strategies as st
from websockets.asyncio.client import ClientConnection

from pushwire import Server
from tests.conftest import API_KEY
from tests.fuzz.conftest import ErrorRecords, check_witness
from tests.fuzz.strategies import CODES, FUZZ, channel_names, cursors, json_values, texts

_PATHS = [
    "/", "/ws", "/sse", "/poll", "/publish", "/presence", "/history", "/health",
    "/api/publish", "/api/broadcast", "/api/history", "/api/channels", "/api/presence",
    "/api/disconnect", "/api/unsubscribe", "/demo/login", "/demo/refresh",
    "/chat/index.html", "/chat/..", "/pushwire.js", "/pushwire.mjs", "/echo", "/nope",
]  # fmt: skip
_paths = st.sampled_from(_PATHS)
_BODY_FIELDS = ["channel", "channels", "data", "event", "user", "name", "avatar", "last_event_id"]
# Header values: any latin-1 text but line breaks (those make other requests: see garbage).
_header_values = st.text(st.characters(min_codepoint=32, max_codepoint=255), max_size=60)
_numbers = st.one_of(
    st.sampled_from(["0", "0.1", "5", "-1", "nan", "inf", "1e9", "1_0", "²", "\u0661", "", "%"]),
    st.integers(-5, 2000).map(str),
    texts,
)
# Each parameter gets values of its own kind, and now and then anything at all.
_PARAMS = {
    "channel": channel_names,
    "cursor": cursors,
    "since": cursors,
    "lastEventId": cursors,
    "timeout": _numbers,
    "limit": _numbers,
    "token": st.one_of(st.sampled_from(["", "a.b.c"]), texts),
    "x": texts,
}


@st.composite
def queries(draw: st.DrawFn) -> str:
    names = draw(st.lists(st.sampled_from(sorted(_PARAMS)), max_size=4))
    if draw(st.booleans()):
        names.insert(0, "channel")  # most endpoints look at nothing else without one
    pairs = [(name, draw(st.one_of(_PARAMS[name], _PARAMS[name], texts))) for name in names]
    safe = draw(st.sampled_from(["", "/:@", "%&=+"]))  # sometimes leave the query half-escaped
    return "&".join(f"{name}={quote(value, safe=safe)}" for name, value in pairs)


_ORIGINS = st.sampled_from(
    ["http://127.0.0.1", "null", "http://x:99999", "http://x:port", "http://[::1", "https://e.x"]
)


@st.composite
def headers(draw: st.DrawFn) -> list[tuple[str, str]]:
    # A Host nearly always (clients send one; same-origin checks need it), the rest at random.
    host = draw(st.sampled_from(["127.0.0.1", "127.0.0.1", "x", "", "[::1]:80", "a:b:c", None]))
    candidates = {
        "Origin": st.one_of(_ORIGINS, _ORIGINS, _header_values),
        "Authorization": st.one_of(
            st.sampled_from(["Bearer ", "Bearer a.b.c", "Basic x"]), _header_values
        ),
        "X-API-Key": st.one_of(st.just(API_KEY), _header_values),
        "Last-Event-ID": st.one_of(cursors.filter(lambda c: "\n" not in c), _header_values),
        "Content-Type": st.sampled_from(["application/json", "text/plain", ""]),
        "Upgrade": st.sampled_from(["websocket", "h2c", ""]),
        "Connection": st.sampled_from(["close", "keep-alive", "upgrade", "Upgrade, close"]),
        "Sec-WebSocket-Key": st.sampled_from(["dGhlIHNhbXBsZSBub25jZQ==", "x"]),
        "Sec-WebSocket-Version": st.sampled_from(["13", "8", ""]),
        "Sec-WebSocket-Extensions": _header_values,
    }
    names = [name for name in sorted(candidates) if draw(st.booleans())]
    chosen = [] if host is None else [("Host", host)]
    return chosen + [(name, draw(candidates[name])) for name in names]


@st.composite
def bodies(draw: st.DrawFn) -> bytes:
    fields = draw(st.lists(st.sampled_from(_BODY_FIELDS), unique=True, max_size=5))
    values = {
        "channel": st.one_of(channel_names, json_values),
        "channels": st.one_of(st.lists(channel_names, max_size=4), json_values),
    }
    body: dict[str, Any] = {f: draw(values.get(f, json_values)) for f in fields}
    return draw(
        st.one_of(
            st.just(orjson.dumps(body)),
            json_values.map(orjson.dumps),
            st.binary(max_size=100),
            st.just(b"x" * 5000),  # over max_message_bytes
        )
    )


@st.composite
def requests(draw: st.DrawFn) -> bytes:
    """A well-formed HTTP/1.1 request: the server must answer it."""
    method = draw(st.sampled_from(["GET", "POST", "OPTIONS", "PUT", "DELETE", "HEAD"]))
    path = draw(
        st.one_of(_paths, _paths, _paths, st.from_regex(r"/[a-z/.%0-9]{0,20}", fullmatch=True))
    )
    query = draw(queries())
    body = draw(bodies()) if method in ("POST", "PUT") or draw(st.booleans()) else b""
    lines = [f"{method} {path}{'?' + query if query else ''} HTTP/1.1"]
    lines += [f"{name}: {value}" for name, value in draw(headers())]
    lines.append(f"Content-Length: {len(body)}")
    return "\r\n".join(lines).encode() + b"\r\n\r\n" + body


@st.composite
def garbage(draw: st.DrawFn) -> bytes:
    """Bytes that may not be HTTP at all: random, truncated, with line breaks injected."""
    request = draw(requests())
    broken: bytes = draw(
        st.one_of(
            st.binary(min_size=1, max_size=300),
            st.integers(1, max(len(request) - 1, 1)).map(lambda cut: request[:cut]),
            st.tuples(st.binary(max_size=20), st.binary(max_size=20)).map(
                lambda parts: request.replace(b"HTTP/1.1", parts[0], 1) + parts[1]
            ),
            st.just(request.replace(b"\r\n", b"\n")),
            st.just(request.replace(b"Content-Length", b"Transfer-Encoding: chunked\r\nX")),
            st.just(request + b"GET /health HTTP/1.1\r\n" * 3),
            st.just(b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * 150 + b"\r\n"),
        )
    )
    return broken


class _Response:
    """One HTTP response read by httptools: status, headers, body, and whether it ended."""

    def __init__(self) -> None:
        self.headers: dict[bytes, bytes] = {}
        self.body = b""
        self.head_done = False
        self.complete = False

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.lower()] = value

    def on_headers_complete(self) -> None:
        self.head_done = True

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        self.complete = True


async def _exchange(server: Server, request: bytes, *, half_close: bool) -> tuple[int, _Response]:
    """Send ``request``; read one answer (or until the server closes). 0: no answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    response = _Response()
    parser = httptools.HttpResponseParser(response)
    try:
        writer.write(request)
        if half_close:
            writer.write_eof()
        deadline = time.monotonic() + 5
        # The answer to HEAD has a Content-Length but no body (httptools can't know that).
        head_only = request.startswith(b"HEAD ")
        while not response.complete:
            if response.head_done and head_only:
                await asyncio.sleep(0.05)  # a body sent anyway would be read as a next answer
                with contextlib.suppress(TimeoutError):
                    parser.feed_data(await asyncio.wait_for(reader.read(65536), 0.01))
                response.complete = True
                break
            if response.head_done and (
                parser.get_status_code() == 101
                or response.headers.get(b"content-type", b"").startswith(b"text/event-stream")
            ):
                break  # a WebSocket or an event stream: open, as it should be
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                pytest.fail(f"no answer within 5 s to {request[:200]!r}")
            chunk = await asyncio.wait_for(reader.read(65536), remaining)
            if not chunk:
                break
            parser.feed_data(chunk)
    finally:
        writer.close()
    if not response.head_done:
        return 0, response
    return parser.get_status_code(), response


def _check_answer(status: int, response: _Response, request: bytes) -> None:
    assert b"Traceback" not in response.body
    if request.startswith(b"HEAD "):
        if not response.body:
            return
        # A body would be read as the next answer on a kept-alive connection. A request
        # that does not parse is answered with an error body and a close: its method is
        # not trusted.
        assert response.headers.get(b"connection") == b"close", (
            f"a body after the head of a HEAD answer: {request[:200]!r}"
        )
    if status in (101, 204) or not response.complete:
        return
    if status >= 400:
        body = orjson.loads(response.body)
        assert body["error"] in CODES, request[:200]
        assert isinstance(body["message"], str)
        assert status != 500, f"internal error for {request[:200]!r}"
    elif response.headers.get(b"content-type") == b"application/json":
        orjson.loads(response.body)


@settings(FUZZ, max_examples=400)
@given(requests())
async def test_any_well_formed_request_gets_an_answer_and_harms_no_one(
    fuzz_server: Server,
    witness: ClientConnection,
    error_records: ErrorRecords,
    request: bytes,
) -> None:
    error_records.records.clear()  # one example's records only: each example shrinks alone
    status, response = await _exchange(fuzz_server, request, half_close=False)

    assert status, f"closed without an answer to {request[:200]!r}"
    _check_answer(status, response, request)
    await check_witness(fuzz_server, witness)
    error_records.check()


@settings(FUZZ, max_examples=150)
@given(garbage())
async def test_garbage_gets_an_error_or_a_close_and_harms_no_one(
    fuzz_server: Server,
    witness: ClientConnection,
    error_records: ErrorRecords,
    request: bytes,
) -> None:
    error_records.records.clear()  # one example's records only: each example shrinks alone
    status, response = await _exchange(fuzz_server, request, half_close=True)

    if status:
        _check_answer(status, response, request)
    await check_witness(fuzz_server, witness)
    error_records.check()
