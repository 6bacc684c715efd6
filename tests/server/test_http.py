"""HttpConnection's modes, driven without a network: a fake transport, a fake router."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable

import pytest

from pushwire.protocol.error_mapping import error_body
from pushwire.server.http import (
    MAX_QUEUED_REQUESTS,
    MAX_STARTED_REQUESTS,
    ConnectionMode,
    HttpConnection,
    Request,
)

UPGRADE = (
    b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)
STREAM_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n"


def get(path: str) -> bytes:
    return b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path.encode()


class FakeTransport(asyncio.Transport):
    """Keeps what is written; counts closes and pauses."""

    def __init__(self) -> None:
        super().__init__()
        self.written = b""
        self.writes = 0
        self.closes = 0
        self.pauses = 0
        self.resumes = 0

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += bytes(data)
        self.writes += 1

    def is_closing(self) -> bool:
        return self.closes > 0

    def close(self) -> None:
        self.closes += 1

    def pause_reading(self) -> None:
        self.pauses += 1

    def resume_reading(self) -> None:
        self.resumes += 1

    def statuses(self) -> list[int]:
        return [int(status) for status in re.findall(rb"HTTP/1\.1 (\d{3}) ", self.written)]


class FakeRouter:
    """Keeps each request; ``answer`` (if set) runs at once, else the request waits."""

    def __init__(self, answer: Callable[[Request, HttpConnection], None] | None = None) -> None:
        self.answer = answer
        self.requests: list[Request] = []
        self.opened = 0
        self.closed = 0
        self.refused: list[str] = []

    def handle(self, request: Request, connection: HttpConnection) -> None:
        self.requests.append(request)
        if self.answer is not None:
            self.answer(request, connection)

    def overlaps(self, request: Request) -> bool:
        return request.path.startswith("/overlap")

    def connection_opened(self, connection: HttpConnection) -> None:
        self.opened += 1

    def connection_closed(self, connection: HttpConnection) -> None:
        self.closed += 1

    def request_refused(self, code: str) -> None:
        self.refused.append(code)


class FakeSession:
    """An upgraded session: keeps the bytes it is given."""

    def __init__(self) -> None:
        self.received = b""
        self.eofs = 0
        self.losses = 0

    def receive_data(self, data: bytes) -> None:
        self.received += data

    def receive_eof(self) -> None:
        self.eofs += 1

    def connection_lost(self) -> None:
        self.losses += 1


def connect(router: FakeRouter) -> tuple[HttpConnection, FakeTransport]:
    connection = HttpConnection(router, max_body_bytes=1024)
    transport = FakeTransport()
    connection.connection_made(transport)
    return connection, transport


def answer_ok(request: Request, connection: HttpConnection) -> None:
    connection.respond(200, request.path.encode())


def upgrade_to(session: FakeSession) -> Callable[[Request, HttpConnection], None]:
    def answer(request: Request, connection: HttpConnection) -> None:
        assert connection.transport is not None
        connection.transport.write(b"HTTP/1.1 101 Switching Protocols\r\n\r\n")
        connection.upgrade(session)

    return answer


def start_stream(request: Request, connection: HttpConnection) -> None:
    connection.start_stream(STREAM_HEAD)


def test_a_new_connection_is_idle_and_known_to_the_router() -> None:
    router = FakeRouter()

    connection, _ = connect(router)

    assert connection.mode is ConnectionMode.IDLE
    assert router.opened == 1


def test_pipelined_requests_go_to_the_router_one_at_a_time_and_are_answered_in_order() -> None:
    router = FakeRouter()
    connection, transport = connect(router)

    connection.data_received(get("/first") + get("/second"))
    held_while_busy = [request.path for request in router.requests]
    mode_while_busy = connection.mode
    connection.respond(200, b"one")
    connection.respond(200, b"two")

    assert held_while_busy == ["/first"]
    assert mode_while_busy is ConnectionMode.BUSY
    assert [request.path for request in router.requests] == ["/first", "/second"]
    assert transport.statuses() == [200, 200]
    assert transport.written.index(b"one") < transport.written.index(b"two")
    assert connection.mode is ConnectionMode.IDLE


def test_requests_answered_at_once_are_all_answered_from_one_chunk() -> None:
    connection, transport = connect(FakeRouter(answer_ok))

    connection.data_received(get("/a") + get("/b") + get("/c"))

    assert transport.statuses() == [200, 200, 200]
    assert re.findall(rb"\r\n\r\n(/\w)", transport.written) == [b"/a", b"/b", b"/c"]
    assert connection.mode is ConnectionMode.IDLE


def post(path: str, keep_alive: bool = True) -> bytes:
    close = b"" if keep_alive else b"Connection: close\r\n"
    return b"POST %s HTTP/1.1\r\nHost: x\r\n%sContent-Length: 2\r\n\r\n{}" % (
        path.encode(),
        close,
    )


def bodies(transport: FakeTransport) -> list[bytes]:
    return re.findall(rb"\r\n\r\n([a-z]+)", transport.written)


async def test_overlapping_requests_all_start_and_are_answered_in_order_in_one_write() -> None:
    router = FakeRouter()
    connection, transport = connect(router)

    connection.data_received(post("/overlap/1") + post("/overlap/2") + post("/overlap/3"))
    started = [request.path for request in router.requests]
    third, second, first = router.requests[::-1]
    connection.respond(200, b"three", request=third)
    connection.respond(200, b"two", request=second)
    written_before_the_first = transport.written
    connection.respond(200, b"one", request=first)

    assert started == ["/overlap/1", "/overlap/2", "/overlap/3"]
    assert written_before_the_first == b""
    assert bodies(transport) == [b"one", b"two", b"three"]
    assert transport.writes == 1
    assert connection.mode is ConnectionMode.IDLE


async def test_answers_finished_together_leave_in_one_write_after_the_iteration() -> None:
    router = FakeRouter()
    connection, transport = connect(router)
    connection.data_received(post("/overlap/1") + post("/overlap/2"))
    first, second = router.requests

    connection.respond(200, b"one", request=first)
    written_at_once = transport.written
    connection.respond(200, b"two", request=second)
    await asyncio.sleep(0)

    assert written_at_once == b""  # the second was on its way: both go together
    assert bodies(transport) == [b"one", b"two"]
    assert transport.writes == 1


async def test_a_request_that_does_not_overlap_waits_for_the_overlapping_ones() -> None:
    router = FakeRouter()
    connection, transport = connect(router)
    connection.data_received(post("/overlap/1") + get("/read") + post("/overlap/2"))
    held_while_busy = [request.path for request in router.requests]

    connection.respond(200, b"one")
    after_one = [request.path for request in router.requests]
    connection.respond(200, b"read")
    connection.respond(200, b"two")

    assert held_while_busy == ["/overlap/1"]
    assert after_one == ["/overlap/1", "/read"]
    assert bodies(transport) == [b"one", b"read", b"two"]


async def test_an_answer_that_closes_leaves_after_the_answers_before_it() -> None:
    router = FakeRouter()
    connection, transport = connect(router)
    connection.data_received(post("/overlap/1") + post("/overlap/2", keep_alive=False))
    first, last = router.requests

    connection.respond(200, b"bye", keep_alive=False, request=last)
    closed_early = transport.closes
    connection.respond(200, b"one", request=first)

    assert closed_early == 0
    assert bodies(transport) == [b"one", b"bye"]
    assert transport.closes == 1


async def test_a_parse_error_after_overlapping_requests_keeps_the_answers_due() -> None:
    router = FakeRouter()
    connection, transport = connect(router)
    connection.data_received(post("/overlap/a") + post("/overlap/b"))
    first, second = router.requests
    connection.respond(200, b"one", request=first)

    connection.data_received(b"NOT HTTP\r\n\r\n")
    connection.respond(200, b"two", request=second)  # too late: the connection failed

    assert transport.statuses() == [200, 400]
    assert bodies(transport)[0] == b"one"
    assert transport.closes == 1
    assert connection.mode is ConnectionMode.CLOSED


async def test_overlapping_requests_start_a_bounded_number_at_a_time() -> None:
    router = FakeRouter()
    connection, transport = connect(router)

    connection.data_received(post("/overlap/x") * (MAX_QUEUED_REQUESTS + 1))
    started = len(router.requests)
    for request in router.requests:  # grows as answers let more requests start
        connection.respond(200, b"ok", request=request)
        await asyncio.sleep(0)  # the answers are written, the next requests start

    assert started == MAX_STARTED_REQUESTS
    assert transport.pauses == 1
    assert transport.resumes == 1
    assert transport.statuses() == [200] * (MAX_QUEUED_REQUESTS + 1)


async def test_answering_a_request_twice_is_a_bug_of_ours() -> None:
    router = FakeRouter()
    connection, _ = connect(router)
    connection.data_received(post("/overlap/1") + post("/overlap/2"))
    first = router.requests[0]
    connection.respond(200, b"one", request=first)

    with pytest.raises(RuntimeError, match="not waiting"):
        connection.respond(200, b"again", request=first)


def test_a_request_split_across_chunks_is_handled_once_complete() -> None:
    router = FakeRouter(answer_ok)
    connection, transport = connect(router)
    request = get("/split")

    connection.data_received(request[:10])
    handled_early = len(router.requests)
    connection.data_received(request[10:])

    assert handled_early == 0
    assert transport.statuses() == [200]


def test_a_response_without_keep_alive_says_so_and_closes_the_transport() -> None:
    connection, transport = connect(FakeRouter())
    connection.data_received(get("/bye"))

    connection.respond(426, b"{}", keep_alive=False)

    assert b"Connection: close\r\n" in transport.written
    assert transport.closes == 1


def test_responding_when_no_request_waits_is_a_forbidden_transition() -> None:
    connection, transport = connect(FakeRouter())

    with pytest.raises(RuntimeError, match="IDLE"):
        connection.respond(200, b"")

    assert transport.written == b""
    assert connection.mode is ConnectionMode.IDLE


def test_streaming_on_an_upgraded_connection_is_a_forbidden_transition() -> None:
    connection, _ = connect(FakeRouter(upgrade_to(FakeSession())))
    connection.data_received(UPGRADE)

    with pytest.raises(RuntimeError, match="WEBSOCKET"):
        connection.start_stream(STREAM_HEAD)

    assert connection.mode is ConnectionMode.WEBSOCKET


def test_upgrading_an_idle_connection_is_a_forbidden_transition() -> None:
    connection, _ = connect(FakeRouter())

    with pytest.raises(RuntimeError, match="IDLE"):
        connection.upgrade(FakeSession())

    assert connection.mode is ConnectionMode.IDLE
    assert connection.upgraded is None


def test_after_fail_the_connection_is_closed_and_later_bytes_and_answers_are_ignored() -> None:
    router = FakeRouter()
    connection, transport = connect(router)
    connection.data_received(get("/poll") + get("/queued"))

    connection.fail(400, error_body("bad_request", "no"))
    written_by_fail = transport.written
    connection.data_received(get("/later"))
    connection.respond(200, b"too late")

    assert connection.is_closed
    assert connection.mode is ConnectionMode.CLOSED
    assert transport.statuses() == [400]
    assert b'"error":"bad_request"' in written_by_fail
    assert b"Connection: close\r\n" in written_by_fail
    assert transport.closes == 1
    assert [request.path for request in router.requests] == ["/poll"]
    assert transport.written == written_by_fail


def test_a_malformed_request_is_answered_400_and_nothing_after_it_is_read() -> None:
    router = FakeRouter(answer_ok)
    connection, transport = connect(router)

    connection.data_received(b"GARBAGE\r\n\r\n")
    connection.data_received(get("/health"))

    assert transport.statuses() == [400]
    assert connection.is_closed
    assert router.requests == []


def test_failing_twice_answers_once() -> None:
    connection, transport = connect(FakeRouter())

    connection.fail(500, error_body("internal", "internal server error"))
    connection.fail(500, error_body("internal", "internal server error"))

    assert transport.statuses() == [500]
    assert transport.closes == 1


def test_after_an_upgrade_bytes_go_to_the_session_starting_with_those_after_the_request() -> None:
    session = FakeSession()
    router = FakeRouter(upgrade_to(session))
    connection, transport = connect(router)

    connection.data_received(UPGRADE + b"\x81\x85tail")
    connection.data_received(get("/not-http-any-more"))
    keep_open = connection.eof_received()

    assert connection.mode is ConnectionMode.WEBSOCKET
    assert connection.upgraded is session
    assert session.received == b"\x81\x85tail" + get("/not-http-any-more")
    assert session.eofs == 1
    assert keep_open is True
    assert len(router.requests) == 1
    assert transport.statuses() == [101]


def test_http_goes_on_after_an_upgrade_request_that_was_refused() -> None:
    def refuse_then_answer(request: Request, connection: HttpConnection) -> None:
        connection.respond(204 if request.upgrade else 200, b"")

    connection, transport = connect(FakeRouter(refuse_then_answer))

    connection.data_received(UPGRADE.replace(b"GET", b"OPTIONS"))
    connection.data_received(get("/health"))

    assert transport.statuses() == [204, 200]
    assert connection.mode is ConnectionMode.IDLE


def test_after_start_stream_the_clients_bytes_are_ignored() -> None:
    router = FakeRouter(start_stream)
    connection, transport = connect(router)

    connection.data_received(get("/sse"))
    connection.data_received(get("/sse") + b"anything at all")
    keep_open = connection.eof_received()

    assert connection.mode is ConnectionMode.STREAMING
    assert transport.written == STREAM_HEAD
    assert len(router.requests) == 1
    assert keep_open is None


def test_too_many_queued_requests_pause_reading_until_they_are_answered() -> None:
    connection, transport = connect(FakeRouter())

    connection.data_received(get("/x") * (MAX_QUEUED_REQUESTS + 2))
    pauses_while_queued = transport.pauses
    for _ in range(MAX_QUEUED_REQUESTS + 2):
        connection.respond(200, b"")

    assert pauses_while_queued == 1
    assert transport.resumes == 1
    assert len(transport.statuses()) == MAX_QUEUED_REQUESTS + 2


def _idle(connection: HttpConnection) -> None:
    pass


def _busy(connection: HttpConnection) -> None:
    connection.data_received(get("/poll"))


def _websocket(connection: HttpConnection) -> None:
    connection.data_received(UPGRADE)
    connection.upgrade(FakeSession())


def _streaming(connection: HttpConnection) -> None:
    connection.data_received(get("/sse"))
    connection.start_stream(STREAM_HEAD)


def _failed(connection: HttpConnection) -> None:
    connection.fail(400, error_body("bad_request", "no"))


@pytest.mark.parametrize(
    ("enter", "mode"),
    [
        (_idle, ConnectionMode.IDLE),
        (_busy, ConnectionMode.BUSY),
        (_websocket, ConnectionMode.WEBSOCKET),
        (_streaming, ConnectionMode.STREAMING),
        (_failed, ConnectionMode.CLOSED),
    ],
)
def test_losing_the_connection_from_any_mode_calls_on_lost_once_and_tells_the_router(
    enter: Callable[[HttpConnection], None], mode: ConnectionMode
) -> None:
    router = FakeRouter()
    connection, _ = connect(router)
    enter(connection)
    assert connection.mode is mode
    calls: list[str] = []
    connection.on_lost = lambda: calls.append("lost")

    connection.connection_lost(None)

    assert calls == ["lost"]
    assert connection.is_closed
    assert router.closed == 1


def test_losing_an_upgraded_connection_tells_the_session_even_after_fail() -> None:
    session = FakeSession()
    connection, _ = connect(FakeRouter(upgrade_to(session)))
    connection.data_received(UPGRADE)
    connection.fail(500, error_body("internal", "internal server error"))

    connection.connection_lost(None)

    assert session.losses == 1


async def test_requests_answered_at_once_are_handed_out_a_bounded_number_per_go() -> None:
    router = FakeRouter(answer_ok)
    connection, transport = connect(router)

    connection.data_received(get("/a") * (MAX_STARTED_REQUESTS + 8))
    in_one_go = transport.statuses()
    await asyncio.sleep(0)

    assert len(in_one_go) == MAX_STARTED_REQUESTS
    assert transport.statuses() == [200] * (MAX_STARTED_REQUESTS + 8)
