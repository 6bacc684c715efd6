"""The fuzz tests' server, its witness subscriber, and the server's error log.

A network fuzz test shares one in-process server across its examples; after each
example the witness, a WebSocket subscriber on the same server, must still receive
a fresh publication (the no-harm invariant) and the log must hold no ERROR record.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import AsyncIterator, Iterator

import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect

from pushwire import Server
from tests.conftest import ServerFactory, recv_json, ws_url

WITNESS_CHANNEL = "witness"
_count = itertools.count()


class ErrorRecords(logging.Handler):
    """Keeps every ERROR record of pushwire and of asyncio (a protocol callback that raised)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def check(self) -> None:
        """Fail with the first record's message and traceback, if there is one."""
        if self.records:
            record = self.records[0]
            pytest.fail(f"ERROR logged: {record.getMessage()}\n{self.format(record)}")


@pytest.fixture
def error_records() -> Iterator[ErrorRecords]:
    handler = ErrorRecords()
    handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    loggers = [logging.getLogger("pushwire"), logging.getLogger("asyncio")]
    for logger in loggers:
        logger.addHandler(handler)
    yield handler
    for logger in loggers:
        logger.removeHandler(handler)


@pytest.fixture
async def fuzz_server(make_server: ServerFactory) -> Server:
    # Long-polls answer within 0.2 s, so that no example waits for its timeout;
    # a small message limit makes "oversized" cheap to reach.
    return await make_server(poll_max_timeout_seconds=0.2, max_message_bytes=4096)


@pytest.fixture
async def witness(fuzz_server: Server) -> AsyncIterator[ClientConnection]:
    async with connect(ws_url(fuzz_server) + f"?channel={WITNESS_CHANNEL}") as ws:
        assert (await recv_json(ws))["type"] == "subscribed"
        yield ws


async def check_witness(server: Server, ws: ClientConnection) -> None:
    """The witness still receives what is published now, and nothing unexpected before it."""
    token = next(_count)
    await server.publish(WITNESS_CHANNEL, token)
    raw = await asyncio.wait_for(ws.recv(), 5)
    message = orjson.loads(raw)
    assert message["type"] == "message"
    assert message["data"] == token
