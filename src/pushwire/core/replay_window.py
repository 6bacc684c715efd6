"""Publications recently read to recover subscribers: one history read serves many.

After a restart (or a network blip) thousands of subscribers of one channel come back
within seconds, most with nearly the same cursor, and each would read the same rows
from history: 10,000 SQLite queries (or broker round trips) for one stream. A window
keeps, per channel, the unbroken run of publications the last recoveries read, so a
recovery whose cursor falls inside it reads nothing, or only what was published since
the window's end.

What a window hands out is what history would: the run came from history, in the same
epoch; it is cut to the channel's history size behind its newest publication (history
keeps at least those), and a run whose oldest wanted publication is past the history TTL
is not used (history would report the gap). Windows live a few seconds after their last
use and only for channels being recovered, a bounded number of them: an idle channel
costs nothing here.

What a window holds is bounded too, since it is the only copy in memory of history kept
on disk: publications past the history TTL are dropped from its front (no cursor could be
served from them), and so are the oldest beyond ``MAX_WINDOW_BYTES`` of payload. Before
the TTL cut, the soak's long polls (a recovery every few seconds on the same channels)
kept the windows of its 50 shared channels alive for the whole run, each growing towards
its history size of 1,000 publications, most of them past the 120 s TTL: 13,600 held
publications and a live heap that crept for half an hour.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pushwire.core.history import Publication, StreamPosition

__all__ = ["ReplayWindows"]

#: A window unused for this long is dropped.
KEEP_SECONDS = 5.0
#: At most this many channels have a window; the least recently used goes first.
MAX_WINDOWS = 64
#: A window holds at most this much payload (its newest publications), or its newest
#: publication alone when that is larger: about 64 MiB in all, whatever the history sizes.
MAX_WINDOW_BYTES = 1 << 20


@dataclass(slots=True)
class _Window:
    """Publications ``start + 1 .. start + len(publications)`` of one epoch, in order."""

    epoch: str
    start: int
    publications: list[Publication]
    used_at: float
    #: The payload bytes of ``publications``, kept up to date for the byte bound.
    size: int = 0

    @property
    def end(self) -> int:
        return self.start + len(self.publications)

    def extend(self, publications: tuple[Publication, ...]) -> None:
        self.publications.extend(publications)
        self.size += sum(len(p.data) for p in publications)

    def cut(self, keep: int, oldest_time: float) -> None:
        """Drop from the front past ``keep``, past ``MAX_WINDOW_BYTES``, or older than
        ``oldest_time``; the newest publication stays, so a window is never empty."""
        held = self.publications
        keep = max(keep, 1)
        size = self.size
        drop = 0
        while drop < len(held) - 1 and (
            len(held) - drop > keep or size > MAX_WINDOW_BYTES or held[drop].time < oldest_time
        ):
            size -= len(held[drop].data)
            drop += 1
        if drop:
            del held[:drop]
            self.start += drop
            self.size = size


class ReplayWindows:
    """The windows of the channels being recovered on this node."""

    __slots__ = ("_clock", "_windows")

    def __init__(self, clock: Callable[[], float]) -> None:
        """``clock``: monotonic seconds, for the windows' lifetimes."""
        self._clock = clock
        # Insertion order is use order: the first entry is the least recently used.
        self._windows: dict[str, _Window] = {}

    def __len__(self) -> int:
        return len(self._windows)

    def take(
        self, channel: str, since: StreamPosition, upto: StreamPosition, oldest_time: float
    ) -> tuple[Publication, ...] | None:
        """The publications after ``since`` up to ``upto``, if the window holds all of them.

        ``oldest_time``: publications older than this (wall clock) are past the history
        TTL; a run that needs one is not handed out.
        """
        window = self._windows.get(channel)
        if (
            window is None
            or window.epoch != since.epoch
            or upto.epoch != since.epoch
            or not window.start <= since.offset < upto.offset <= window.end
        ):
            return None
        first = since.offset - window.start
        run = window.publications[first : upto.offset - window.start]
        if run[0].time < oldest_time:
            return None
        self._expire(self._clock())
        self._use(channel, window)
        return tuple(run)

    def resume_point(self, channel: str, since: StreamPosition) -> StreamPosition | None:
        """Where a read that extends the window must start, if it can serve ``since``.

        A cursor past the window's end is served by extending it too (reading the few
        publications in between as well), so that the window stays one run for every
        cursor after its start. None when ``since`` is before the window, or in another
        epoch: read from ``since`` instead.
        """
        window = self._windows.get(channel)
        if window is None or window.epoch != since.epoch or since.offset < window.start:
            return None
        return StreamPosition(window.epoch, window.end)

    def add(
        self,
        channel: str,
        after: StreamPosition,
        publications: tuple[Publication, ...],
        keep: int,
        oldest_time: float,
    ) -> None:
        """Hold ``publications`` (the whole, unbroken run after ``after``, read from history).

        They extend the window when they continue it; otherwise they replace it. At
        most ``keep`` (the channel's history size) are held, the newest, and none from
        before ``oldest_time`` (wall clock: past the history TTL) but the newest.
        """
        now = self._clock()
        self._expire(now)
        window = self._windows.get(channel)
        if window is not None and window.epoch == after.epoch and window.end == after.offset:
            window.extend(publications)
        elif publications:
            window = _Window(after.epoch, after.offset, [], now)
            window.extend(publications)
            self._windows.pop(channel, None)
            self._windows[channel] = window
            while len(self._windows) > MAX_WINDOWS:
                del self._windows[next(iter(self._windows))]
        else:
            return
        window.cut(keep, oldest_time)
        self._use(channel, window)

    def drop(self, channel: str) -> None:
        """Forget ``channel``'s window (its run no longer continues in history)."""
        self._windows.pop(channel, None)

    def _use(self, channel: str, window: _Window) -> None:
        window.used_at = self._clock()
        self._windows.pop(channel, None)
        self._windows[channel] = window

    def _expire(self, now: float) -> None:
        for channel, window in list(self._windows.items()):
            if now - window.used_at < KEEP_SECONDS:
                return  # use order: the rest were used later
            del self._windows[channel]
