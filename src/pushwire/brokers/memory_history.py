"""History kept in process memory: fast, and gone when the process exits.

Every restart starts new epochs, so clients holding old cursors are told about
the gap instead of being "recovered" into a stream they never saw.
"""

from __future__ import annotations

from collections import deque
from itertools import islice

from pushwire.core.broker import HistoryOptions
from pushwire.core.history import HistoryPage, Publication, StreamPosition, new_epoch

__all__ = ["MemoryHistoryStore"]


class _Stream:
    __slots__ = ("epoch", "publications", "top")

    def __init__(self, size: int) -> None:
        self.epoch = new_epoch()
        self.top = 0
        self.publications: deque[Publication] = deque(maxlen=max(size, 0))


class MemoryHistoryStore:
    """Per-channel ring buffers of the latest publications."""

    __slots__ = ("_streams",)

    def __init__(self) -> None:
        self._streams: dict[str, _Stream] = {}

    def _stream(self, channel: str, options: HistoryOptions) -> _Stream:
        stream = self._streams.get(channel)
        if stream is None:
            stream = self._streams[channel] = _Stream(options.size)
        elif stream.publications.maxlen != options.size:
            # The rule changed (new config): keep what still fits.
            stream.publications = deque(stream.publications, maxlen=max(options.size, 0))
        return stream

    def append(
        self,
        channel: str,
        data: bytes,
        event: str | None,
        options: HistoryOptions,
        now: float,
        *,
        publisher: bytes | None = None,
    ) -> Publication:
        stream = self._stream(channel, options)
        stream.top += 1
        publication = Publication(
            channel, StreamPosition(stream.epoch, stream.top), data, event, now, publisher
        )
        if options.size > 0:
            stream.publications.append(publication)
        return publication

    def read(
        self,
        channel: str,
        since: StreamPosition | None,
        limit: int,
        options: HistoryOptions,
        now: float,
    ) -> HistoryPage:
        stream = self._stream(channel, options)
        top = StreamPosition(stream.epoch, stream.top)
        kept = stream.publications
        oldest_allowed = now - options.ttl_seconds
        while kept and kept[0].time < oldest_allowed:
            kept.popleft()
        if limit <= 0 or (since is not None and since.epoch != stream.epoch):
            return HistoryPage((), top)
        if since is None:
            start = max(len(kept) - limit, 0)
        else:
            # Offsets in the deque are consecutive, so the index is arithmetic.
            first = kept[0].position.offset if kept else stream.top + 1
            start = max(since.offset + 1 - first, 0)
        return HistoryPage(tuple(islice(kept, start, start + limit)), top)

    def top(self, channel: str) -> StreamPosition:
        stream = self._streams.get(channel)
        if stream is None:
            stream = self._streams[channel] = _Stream(0)
        return StreamPosition(stream.epoch, stream.top)

    def close(self) -> None:
        self._streams.clear()
