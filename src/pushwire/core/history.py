"""Channel history: publications, positions within a stream, and cursors.

A channel's stream is named by its epoch; offsets count up from 1 inside one epoch.
A new epoch means history was lost (a memory store restarted, a database was
deleted), so a cursor from an old epoch can never be silently "recovered".
Pure data and arithmetic: storing streams is a broker's job (see core.broker).
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

from pushwire.errors import InvalidCursorError

__all__ = [
    "Gap",
    "HistoryPage",
    "Publication",
    "StreamPosition",
    "decode_stream_cursor",
    "encode_stream_cursor",
    "new_epoch",
]

_CURSOR = re.compile(r"([0-9a-f]{1,16})-([0-9]{1,19})")
# Offsets are stored as SQLite's signed 64-bit integers; no stream gets past them.
_MAX_OFFSET = 2**63 - 1


def new_epoch() -> str:
    """A fresh epoch: 8 hex digits, random so that two stores never share one."""
    return secrets.token_hex(4)


@dataclass(frozen=True, slots=True)
class StreamPosition:
    """Where a reader stands in a channel's stream: after ``offset`` in ``epoch``."""

    epoch: str
    offset: int

    @property
    def cursor(self) -> str:
        """The opaque string clients hold and send back (``EPOCH-OFFSET``)."""
        return f"{self.epoch}-{self.offset}"

    @classmethod
    def from_cursor(cls, cursor: str) -> StreamPosition:
        """Parse a cursor issued by :attr:`cursor`.

        Raises:
            InvalidCursorError: if ``cursor`` is not of that shape.
        """
        match = _CURSOR.fullmatch(cursor)
        if match is None or int(match.group(2)) > _MAX_OFFSET:
            raise InvalidCursorError(f"not a pushwire cursor: {cursor[:64]!r}")
        return cls(match.group(1), int(match.group(2)))


@dataclass(frozen=True, slots=True)
class Publication:
    """One message as published to one channel, with its place in the stream.

    ``data`` is the message payload as JSON bytes, validated once when it was
    published, so that every transport can splice it into its frames unchanged.
    """

    channel: str
    position: StreamPosition
    data: bytes
    event: str | None = None
    time: float = 0.0
    #: Who published it, when a client with a token did: ``{"user", "info"}`` as JSON,
    #: checked by the server (subscribers see it as the message's ``from``).
    publisher: bytes | None = None


@dataclass(frozen=True, slots=True)
class Gap:
    """Publications on ``channel`` up to ``position`` are lost to this node's subscribers.

    Live delivery found a hole that history could no longer fill (or the epoch
    changed); subscribers are told, and carry on from ``position``.
    """

    channel: str
    position: StreamPosition


@dataclass(frozen=True, slots=True)
class HistoryPage:
    """Publications read from a stream, oldest first, and the stream's top position.

    ``top`` is the position of the newest publication the store knows of, whether
    or not it is in ``publications`` (history may be shorter, or cut by ``limit``).
    """

    publications: tuple[Publication, ...]
    top: StreamPosition


def encode_stream_cursor(positions: list[StreamPosition]) -> str:
    """One cursor for a stream over several channels (given in sorted channel order).

    SSE and long-polling resume every channel of a request from a single
    ``Last-Event-ID`` or ``cursor``; with one channel it equals that channel's cursor.
    """
    return ".".join(position.cursor for position in positions)


def decode_stream_cursor(cursor: str, channel_count: int) -> list[StreamPosition]:
    """Split a stream cursor back into one position per channel (sorted order).

    Raises:
        InvalidCursorError: if malformed or made for a different number of channels.
    """
    parts = cursor.split(".")
    if len(parts) != channel_count:
        raise InvalidCursorError(
            f"cursor covers {len(parts)} channel(s), the request names {channel_count}"
        )
    return [StreamPosition.from_cursor(part) for part in parts]
