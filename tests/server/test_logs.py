"""Logs: JSON lines from a real server process, one line per event, nothing secret.

The process test runs ``pushwire serve --log-format json`` and reads its output as a
collector would; the unit tests below check the formatter, the refusal cap and the
broker watch without a process.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from pushwire.brokers.memory import MemoryBroker
from pushwire.brokers.memory_history import MemoryHistoryStore
from pushwire.errors import InvalidTokenError, UsageError
from pushwire.server.config import load_config
from pushwire.server.logs import BrokerWatch, JsonFormatter, RefusalLog, configure_logging
from pushwire.server.tokens import TokenVerifier
from tests.conftest import API_KEY
from tests.server_process import ServerProcess

SECRET = "a-token-secret-long-enough-for-hs256!"


def json_lines(text: str) -> list[dict[str, Any]]:
    """Every line of a log, each parsed as one JSON object (the test fails on any other)."""
    lines = [orjson.loads(line) for line in text.splitlines() if line.strip()]
    assert all(isinstance(line, dict) for line in lines)
    return lines


async def test_a_json_server_log_is_one_object_per_event_and_holds_no_secret(
    server_process: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    config = tmp_path / "pushwire.toml"
    config.write_text(f'token_secret = "{SECRET}"\n')
    process = server_process(
        "--memory", "--no-demo", "--config", str(config), "--log-format", "json"
    )
    verifier = TokenVerifier("HS256", SECRET)
    good = verifier.mint("ann", ttl_seconds=600)
    forged = TokenVerifier("HS256", "another-secret-just-as-long-as-hs256!!").mint(
        "mallory", ttl_seconds=600
    )
    ws_base = process.url.replace("http", "ws") + "/ws?channel=news&token="

    async with connect(ws_base + good) as ann:
        await ann.recv()  # subscribed
        for n in range(20):
            process.publish("news", {"n": n})
            await ann.recv()
        with pytest.raises(InvalidStatus):
            async with connect(ws_base + forged):
                pass
    code, output = process.stop()

    lines = json_lines(output)
    assert code == 0
    for line in lines:
        assert {"time", "level", "logger", "message"} <= line.keys(), line
        assert line["time"].endswith("+00:00")
    events = [line.get("event") for line in lines]
    assert events.count("started") == 1
    assert events.count("stopped") == 1
    refusals = [line for line in lines if line.get("event") == "connection_refused"]
    assert [(r["code"], r["path"], r["peer"]) for r in refusals] == [
        ("invalid_token", "/ws", "127.0.0.1")
    ]
    # Twenty messages and two connections: no line for any of them at the default level.
    assert len(lines) == 3, lines
    for secret in (good, forged, SECRET, API_KEY):
        assert secret not in output


def test_text_is_the_default_format() -> None:
    config = load_config(environ={})
    from_env = load_config(environ={"PUSHWIRE_LOG_FORMAT": "json"})

    assert config.log_format == "text"
    assert from_env.log_format == "json"
    with pytest.raises(UsageError, match="log_format must be 'text' or 'json'"):
        load_config(environ={"PUSHWIRE_LOG_FORMAT": "xml"})
    with pytest.raises(UsageError, match="log_level"):
        load_config(environ={"PUSHWIRE_LOG_LEVEL": "loud"})


@pytest.fixture
def root_logging() -> Iterator[None]:
    """Give the root logger back as it was (``configure_logging`` replaces its handlers)."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers, root.level = handlers, level


@pytest.mark.usefixtures("root_logging")
def test_json_lines_carry_extra_fields_the_worker_and_the_traceback() -> None:
    stream = io.StringIO()
    configure_logging("info", "json", stream=stream, fields={"worker": "2"})
    log = logging.getLogger("pushwire.test")

    log.info("hello %s", "there", extra={"event": "started", "url": "http://x"})
    log.debug("not at info")
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("it failed")

    first, second = json_lines(stream.getvalue())
    assert first["message"] == "hello there"
    assert (first["level"], first["logger"], first["worker"]) == ("info", "pushwire.test", "2")
    assert (first["event"], first["url"]) == ("started", "http://x")
    assert second["level"] == "error"
    assert "ValueError: boom" in second["exception"]


def test_json_formatter_keeps_a_line_with_an_odd_extra() -> None:
    record = logging.makeLogRecord({"msg": "x", "levelname": "INFO", "peer": object()})

    line = orjson.loads(JsonFormatter().format(record))

    assert line["peer"].startswith("<object object")


def test_refusals_past_the_cap_are_counted_and_reported_on_the_next_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [100.0]
    refusals = RefusalLog(per_second=2, clock=lambda: now[0])
    refused = InvalidTokenError("bad signature")

    with caplog.at_level(logging.INFO, logger="pushwire.server"):
        for _ in range(5):
            refusals.refused(refused, path="/ws", peer="127.0.0.1")
        now[0] = 101.0
        refusals.refused(refused, path="/sse", peer="127.0.0.1")

    records = caplog.records
    assert len(records) == 3
    assert records[-1].__dict__["left_out"] == 3
    assert "3 more refusals were not logged" in records[-1].getMessage()


class FlakyBroker(MemoryBroker):
    """The embedded broker with a link that the test cuts and mends."""

    def __init__(self) -> None:
        super().__init__(MemoryHistoryStore())
        self.up = True

    @property
    def connected(self) -> bool:
        return self.up


def test_the_broker_watch_logs_down_and_up_once_each(caplog: pytest.LogCaptureFixture) -> None:
    broker = FlakyBroker()
    watch = BrokerWatch(broker)

    with caplog.at_level(logging.INFO, logger="pushwire.server"):
        watch.check()
        broker.up = False
        watch.check()
        watch.check()
        broker.up = True
        watch.check()

    assert [r.__dict__["event"] for r in caplog.records] == ["broker_down", "broker_up"]
    assert caplog.records[0].levelno == logging.WARNING
