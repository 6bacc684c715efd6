"""History kept in process memory: fast, and gone when the process exits.

Nothing is kept for a channel until something is published to it: a channel that
was only subscribed to (or named by a made-up cursor) costs nothing once its
subscribers leave. A stream that has had no publication and no subscriber for
``meta_ttl_seconds`` is forgotten by an incremental sweep, and publications past
their TTL are dropped whether or not anyone reads the channel.

Every restart starts new epochs, so clients holding old cursors are told about
the gap instead of being "recovered" into a stream they never saw.
"""

from __future__ import annotations

from collections import OrderedDict
from itertools import islice

from pushwire.brokers.memory import Append
from pushwire.core.broker import HistoryOptions
from pushwire.core.history import HistoryPage, Publication, StreamPosition, new_epoch

__all__ = ["DEFAULT_META_TTL_SECONDS", "MemoryHistoryStore"]

DEFAULT_META_TTL_SECONDS = 3 * 86400.0


# A kept list may outgrow its size by this much before it is trimmed: trimming is a
# copy, so it is done once per this many appends, not on every one.
_TRIM_SLACK = 32


class _Stream:
    """One channel's epoch, top offset and kept publications (None while it keeps none).

    A list, not a ``deque(maxlen=...)``: a deque takes a 528-byte block even for one
    publication (past pymalloc's small-object limit, so freed ones rarely go back to
    the OS); a list of one takes 64 bytes.
    """

    __slots__ = ("epoch", "publications", "size", "top", "ttl_seconds", "updated")

    def __init__(self, epoch: str, options: HistoryOptions, now: float) -> None:
        self.epoch = epoch
        self.top = 0
        self.size = max(options.size, 0)
        self.ttl_seconds = options.ttl_seconds
        self.updated = now
        self.publications: list[Publication] | None = None


class MemoryHistoryStore:
    """Per-channel ring buffers of the latest publications, for published channels only."""

    __slots__ = ("_epoch", "_meta_ttl", "_min_ttl", "_streams", "_watched")

    def __init__(self, *, meta_ttl_seconds: float = DEFAULT_META_TTL_SECONDS) -> None:
        self._meta_ttl = meta_ttl_seconds
        # Least recently published first: the sweep looks at the front only.
        self._streams: OrderedDict[str, _Stream] = OrderedDict()
        # The epoch of every channel that has no stream yet. It changes when the sweep
        # forgets a stream, so that a stream made again never reuses old offsets.
        self._epoch = new_epoch()
        self._watched: set[str] = set()  # channels with subscribers: never forgotten
        self._min_ttl = meta_ttl_seconds

    def top(self, channel: str) -> StreamPosition:
        stream = self._streams.get(channel)
        if stream is None:
            return StreamPosition(self._epoch, 0)
        return StreamPosition(stream.epoch, stream.top)

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
        streams = self._streams
        stream = streams.get(channel)
        if stream is None:
            stream = streams[channel] = _Stream(self._epoch, options, now)
        else:
            streams.move_to_end(channel)
            stream.updated = now
            stream.ttl_seconds = options.ttl_seconds
        self._min_ttl = min(self._min_ttl, options.ttl_seconds)
        stream.top += 1
        size = max(options.size, 0)
        if size:
            # Kept for long: copied to its own size. orjson's output holds a 4 KiB
            # allocation however short it is (3.13, measured with tracemalloc).
            data = bytes(memoryview(data))
            if publisher is not None:
                publisher = bytes(memoryview(publisher))
        publication = Publication(
            channel, StreamPosition(stream.epoch, stream.top), data, event, now, publisher
        )
        kept = stream.publications
        if size == 0:
            stream.publications = None
        else:
            if kept is None:
                kept = stream.publications = []
            kept.append(publication)
            if len(kept) > size + _TRIM_SLACK or stream.size != size:
                del kept[: len(kept) - size]  # the oldest beyond the size (the rule may change)
            _drop_expired(kept, now - options.ttl_seconds)
        stream.size = size
        return publication

    commits_in_groups = False  # appending is a few dict operations: nothing to group

    def append_many(self, batch: list[Append], now: float) -> list[Publication]:
        return [
            self.append(a.channel, a.data, a.event, a.options, now, publisher=a.publisher)
            for a in batch
        ]

    def checkpoint(self) -> None:
        pass  # nothing on disk

    def read(
        self,
        channel: str,
        since: StreamPosition | None,
        limit: int,
        options: HistoryOptions,
        now: float,
    ) -> HistoryPage:
        stream = self._streams.get(channel)
        if stream is None:
            return HistoryPage((), StreamPosition(self._epoch, 0))
        top = StreamPosition(stream.epoch, stream.top)
        kept = stream.publications
        if kept is not None:
            _drop_expired(kept, now - options.ttl_seconds)
        if limit <= 0 or not kept or (since is not None and since.epoch != stream.epoch):
            return HistoryPage((), top)
        # The list may hold up to _TRIM_SLACK more than the size: those are not history.
        first = max(len(kept) - stream.size, 0)
        if since is None:
            start = max(len(kept) - limit, first)
        else:
            # Offsets in the list are consecutive, so the index is arithmetic.
            start = max(since.offset + 1 - kept[0].position.offset, first)
        return HistoryPage(tuple(kept[start : start + limit]), top)

    def watch(self, channel: str) -> None:
        """``channel`` has subscribers: its stream must not be forgotten meanwhile."""
        self._watched.add(channel)

    def unwatch(self, channel: str, now: float) -> None:
        """The last subscriber left: from ``now`` on the stream is idle."""
        self._watched.discard(channel)
        stream = self._streams.get(channel)
        if stream is not None:
            stream.updated = max(stream.updated, now)
            self._streams.move_to_end(channel)

    def sweep(self, now: float, budget: int = 1000) -> int:
        """Drop expired publications and forget idle streams, looking at most at ``budget``.

        Returns how many streams were forgotten. Only the least recently published
        streams are looked at, so one call does a bounded amount of work.
        """
        streams = self._streams
        forgotten = 0
        horizon = min(self._min_ttl, self._meta_ttl)
        for channel in list(islice(streams, budget)):
            stream = streams[channel]
            idle = now - stream.updated
            if idle < horizon:
                break  # every stream after this one was published to more recently
            if idle >= self._meta_ttl:
                if channel in self._watched:
                    stream.updated = now  # subscribed: keep it, look again later
                    streams.move_to_end(channel)
                    continue
                del streams[channel]
                forgotten += 1
            elif stream.publications is not None and idle >= stream.ttl_seconds:
                stream.publications = None  # all of them are past their TTL
        if forgotten:
            self._epoch = new_epoch()
        return forgotten

    def stream_count(self) -> int:
        return len(self._streams)

    def publication_count(self) -> int:
        return sum(len(s.publications or ()) for s in self._streams.values())

    def close(self) -> None:
        self._streams.clear()


def _drop_expired(kept: list[Publication], oldest_allowed: float) -> None:
    if kept and kept[0].time < oldest_allowed:
        expired = next(
            (i for i, publication in enumerate(kept) if publication.time >= oldest_allowed),
            len(kept),
        )
        del kept[:expired]
