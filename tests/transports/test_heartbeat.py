"""Keep-alives on one timer: WebSocket pings with a pong deadline, SSE comment lines.

Time is a FakeClock; the sessions and streams are small stand-ins that record
what the keep-alive does to them.
"""

from __future__ import annotations

import asyncio
from typing import cast

from pushwire.errors import PING_TIMEOUT, Disconnect
from pushwire.protocol.codec import SSE_PING
from pushwire.testing import FakeClock
from pushwire.transports.base import Ticker
from pushwire.transports.sse import SSEPinger, SSEStream
from pushwire.transports.websocket import Heartbeat, WebSocketSession

INTERVAL = 10.0
TIMEOUT = 5.0


class PingedSession:
    """What Heartbeat uses of a WebSocketSession, recording pings and closes."""

    def __init__(self, *, answers: bool) -> None:
        self.answers = answers
        self.awaiting_pong = False
        self.ping_sent_at = 0.0
        self.pings: list[float] = []
        self.closed: list[Disconnect] = []

    def ping(self, now: float) -> None:
        self.awaiting_pong = True
        self.ping_sent_at = now
        self.pings.append(now)
        if self.answers:
            self.awaiting_pong = False  # the pong (or any frame) came back at once

    def close(self, reason: Disconnect) -> None:
        self.closed.append(reason)


def _heartbeat(clock: FakeClock, *sessions: PingedSession) -> Heartbeat:
    heartbeat = Heartbeat(INTERVAL, TIMEOUT, clock=clock)
    for session in sessions:
        # Heartbeat reads and calls only what PingedSession has.
        heartbeat.add(cast(WebSocketSession, session))
    heartbeat.start()
    return heartbeat


def test_every_session_is_pinged_at_each_interval() -> None:
    clock = FakeClock()
    first, second = PingedSession(answers=True), PingedSession(answers=True)
    _heartbeat(clock, first, second)

    clock.advance(INTERVAL * 3)

    assert first.pings == [10.0, 20.0, 30.0]
    assert second.pings == [10.0, 20.0, 30.0]


def test_a_session_that_answers_stays_open() -> None:
    clock = FakeClock()
    session = PingedSession(answers=True)
    _heartbeat(clock, session)

    clock.advance(INTERVAL * 5)

    assert session.closed == []


def test_a_session_that_does_not_answer_is_closed_once_the_timeout_is_over() -> None:
    clock = FakeClock()
    silent = PingedSession(answers=False)
    _heartbeat(clock, silent)

    clock.advance(INTERVAL + TIMEOUT - 0.1)
    closed_early = list(silent.closed)
    clock.advance(0.1)

    assert silent.pings == [INTERVAL]
    assert closed_early == []
    assert silent.closed == [PING_TIMEOUT]


def test_an_answer_within_the_timeout_keeps_a_session_open() -> None:
    clock = FakeClock()
    late = PingedSession(answers=False)
    _heartbeat(clock, late)
    clock.advance(INTERVAL + TIMEOUT - 1)

    late.awaiting_pong = False  # what receive_data does with any frame
    clock.advance(1)

    assert late.closed == []


def test_a_session_still_waiting_for_a_pong_is_not_pinged_again() -> None:
    clock = FakeClock()
    slow_timeout = Heartbeat(INTERVAL, INTERVAL * 3, clock=clock)
    silent = PingedSession(answers=False)
    slow_timeout.add(cast(WebSocketSession, silent))
    slow_timeout.start()

    clock.advance(INTERVAL * 3)

    assert silent.pings == [INTERVAL]


def test_only_the_silent_session_is_closed() -> None:
    clock = FakeClock()
    answering, silent = PingedSession(answers=True), PingedSession(answers=False)
    _heartbeat(clock, answering, silent)

    clock.advance(INTERVAL + TIMEOUT)

    assert answering.closed == []
    assert silent.closed == [PING_TIMEOUT]


def test_a_discarded_session_is_neither_pinged_nor_closed() -> None:
    clock = FakeClock()
    silent = PingedSession(answers=False)
    heartbeat = _heartbeat(clock, silent)

    heartbeat.discard(cast(WebSocketSession, silent))
    clock.advance(INTERVAL * 3)

    assert silent.pings == []
    assert silent.closed == []


def test_a_stopped_heartbeat_pings_no_more() -> None:
    clock = FakeClock()
    session = PingedSession(answers=True)
    heartbeat = _heartbeat(clock, session)
    clock.advance(INTERVAL)

    heartbeat.stop()
    clock.advance(INTERVAL * 3)

    assert session.pings == [INTERVAL]


class WrittenTransport(asyncio.Transport):
    """A transport that keeps what is written to it."""

    def __init__(self) -> None:
        super().__init__()
        self.written: list[bytes] = []

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written.append(bytes(data))

    def get_write_buffer_size(self) -> int:
        return 0


def test_every_sse_stream_gets_a_ping_comment_at_each_interval() -> None:
    clock = FakeClock()
    pinger = SSEPinger(INTERVAL, clock=clock)
    transports = [WrittenTransport(), WrittenTransport()]
    pinger.streams.update(SSEStream(transport, max_buffer_bytes=1024) for transport in transports)
    pinger.start()

    clock.advance(INTERVAL * 2)

    assert SSE_PING == b": ping\n\n"  # a comment line: EventSource ignores it
    assert [transport.written for transport in transports] == [[SSE_PING] * 2] * 2


def test_a_stopped_sse_pinger_writes_no_more() -> None:
    clock = FakeClock()
    pinger = SSEPinger(INTERVAL, clock=clock)
    transport = WrittenTransport()
    pinger.streams.add(SSEStream(transport, max_buffer_bytes=1024))
    pinger.start()
    clock.advance(INTERVAL)

    pinger.stop()
    clock.advance(INTERVAL * 3)

    assert transport.written == [SSE_PING]


def test_stopping_the_heartbeat_cancels_a_pong_check_already_due() -> None:
    clock = FakeClock()
    silent = PingedSession(answers=False)
    heartbeat = _heartbeat(clock, silent)
    clock.advance(INTERVAL)  # pinged; its pong check falls due TIMEOUT later

    heartbeat.stop()
    clock.advance(INTERVAL)

    assert silent.pings == [INTERVAL]
    assert silent.closed == []


def test_starting_a_running_ticker_again_adds_no_second_timer() -> None:
    clock = FakeClock()
    ticks: list[float] = []
    ticker = Ticker(INTERVAL, lambda: ticks.append(clock.time()), clock=clock)

    ticker.start()
    ticker.start()
    clock.advance(INTERVAL * 2)
    ticker.stop()
    clock.advance(INTERVAL * 2)

    assert ticks == [10.0, 20.0]
