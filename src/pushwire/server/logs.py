"""What the server logs, and how: ``text`` lines for people, ``json`` lines for collectors.

One line per event that matters (start, stop, broker down and up, a connection
refused, a slow consumer cut off), never one per message. The events a collector
may act on carry an ``event`` field (``LogEvent``); refusals are capped per second,
so a flood of bad connections cannot flood the log. Nothing secret goes in:
messages never repeat a token, an API key or a broker password.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import IO, Any

import orjson

from pushwire.core.broker import Broker
from pushwire.errors import ClientError, ServerError

__all__ = [
    "LOG_FORMATS",
    "BrokerWatch",
    "JsonFormatter",
    "LogEvent",
    "RefusalLog",
    "configure_logging",
]

LOG_FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

logger = logging.getLogger("pushwire.server")

# What every LogRecord has; anything else on a record came from ``extra=``.
_RECORD_FIELDS = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class LogEvent:
    """The ``event`` field of the lines a collector may alert on."""

    STARTED = "started"
    STOPPED = "stopped"
    BROKER_DOWN = "broker_down"
    BROKER_UP = "broker_up"
    CONNECTION_REFUSED = "connection_refused"
    #: Logged by the transports (``websocket.py``, ``sse.py``), below this layer.
    SLOW_CONSUMER = "slow_consumer"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``time`` (UTC, ISO 8601), ``level``, ``logger``, ``message``.

    Fields given with ``extra=`` follow (``event``, ``code``, ``peer``...), then
    ``exception`` with the traceback when there is one. ``fields`` are added to every
    line (the worker number, under ``--workers``).
    """

    def __init__(self, fields: dict[str, str] | None = None) -> None:
        super().__init__()
        self._fields = fields or {}

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            **self._fields,
        }
        for name, value in vars(record).items():
            if name not in _RECORD_FIELDS and not name.startswith("_"):
                entry[name] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        # default=str: an odd extra value is shown as text rather than losing the line.
        return orjson.dumps(entry, default=str).decode()


def configure_logging(
    level: str,
    log_format: str,
    *,
    stream: IO[str] | None = None,
    text_format: str = TEXT_FORMAT,
    fields: dict[str, str] | None = None,
) -> None:
    """Send every log record to ``stream`` (stderr) as ``text`` or ``json`` lines.

    Replaces the root logger's handlers, so call it once, at start, from the command
    line; an application embedding pushwire configures logging its own way.
    ``text_format`` is a ``logging`` format; ``fields`` go on every JSON line.
    """
    handler = logging.StreamHandler(stream or sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonFormatter(fields))
    else:
        handler.setFormatter(logging.Formatter(text_format))
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level.upper())


class RefusalLog:
    """Logs refused connections, at most ``per_second`` lines a second.

    A refusal is information, not a fault of ours (INFO); past the cap, refusals are
    counted and the next line logged says how many were left out.
    """

    __slots__ = ("_clock", "_left_out", "_logged", "_second", "per_second")

    def __init__(self, per_second: int = 10, *, clock: Callable[[], float] = time.monotonic):
        self.per_second = per_second
        self._clock = clock
        self._second = 0
        self._logged = 0
        self._left_out = 0

    def refused(self, exc: BaseException, *, path: str, peer: str | None) -> None:
        second = int(self._clock())
        if second != self._second:
            self._second, self._logged = second, 0
        if self._logged >= self.per_second:
            self._left_out += 1
            return
        self._logged += 1
        code = exc.code if isinstance(exc, ClientError | ServerError) else ServerError.code
        extra: dict[str, object] = {
            "event": LogEvent.CONNECTION_REFUSED,
            "code": code,
            "path": path,
            "peer": peer,
        }
        left_out, self._left_out = self._left_out, 0
        note = ""
        if left_out:
            extra["left_out"] = left_out
            note = f" ({left_out} more refusals were not logged)"
        # The message is the error's own: error messages never repeat a token or key.
        logger.info(
            "refused %s from %s: %s (%s)%s", path, peer or "?", exc, code, note, extra=extra
        )


class BrokerWatch:
    """Logs when the node loses its broker (``/health`` degraded) and when it is back.

    Read on a timer rather than told by the broker, so that every broker gets the
    same two lines, whatever it logs of its own reconnecting.
    """

    __slots__ = ("_broker", "_connected")

    def __init__(self, broker: Broker) -> None:
        self._broker = broker
        self._connected = True  # what the node assumes until it looks

    def check(self) -> None:
        connected = self._broker.connected
        if connected == self._connected:
            return
        self._connected = connected
        name = self._broker.name
        if connected:
            logger.info("broker %s reachable again", name, extra={"event": LogEvent.BROKER_UP})
        else:
            logger.warning(
                "broker %s unreachable: /health says degraded, publishes fail until it is back",
                name,
                extra={"event": LogEvent.BROKER_DOWN},
            )
