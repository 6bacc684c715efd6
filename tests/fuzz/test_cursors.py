"""Fuzzing cursors: ``StreamPosition.from_cursor`` and ``decode_stream_cursor``.

Any string either is refused with InvalidCursorError or parses to positions that
encode back to the very same string (a cursor is opaque, so only pushwire's own
shape is accepted, and only in its canonical spelling). Derandomized.
"""

from __future__ import annotations

from hypothesis import given, settings, strategies as st

from pushwire.core.history import StreamPosition, decode_stream_cursor, encode_stream_cursor
from pushwire.errors import InvalidCursorError
from tests.fuzz.strategies import FUZZ, cursors

# SQLite stores offsets as signed 64-bit integers; no stream ever reaches past them.
_MAX_OFFSET = 2**63 - 1


@settings(FUZZ, max_examples=300)
@given(cursors)
def test_a_cursor_is_refused_or_parses_to_a_position_within_range(cursor: str) -> None:
    try:
        position = StreamPosition.from_cursor(cursor)
    except InvalidCursorError:
        return

    assert 0 <= position.offset <= _MAX_OFFSET
    assert StreamPosition.from_cursor(position.cursor) == position


@settings(FUZZ, max_examples=300)
@given(cursors, st.integers(min_value=1, max_value=5))
def test_a_stream_cursor_is_refused_or_round_trips(cursor: str, channel_count: int) -> None:
    try:
        positions = decode_stream_cursor(cursor, channel_count)
    except InvalidCursorError:
        return

    assert len(positions) == channel_count
    assert decode_stream_cursor(encode_stream_cursor(positions), channel_count) == positions
