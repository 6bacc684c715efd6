"""History kept in a SQLite file under the data directory: survives restarts.

WAL mode with ``synchronous=NORMAL``: a commit reaches the OS before the
publication is fanned out, so a crashed process never re-issues an offset that
clients already hold (a power cut may still lose the last commits; the epoch
survives, and the lost offsets are reported as a gap, never reused silently).

As in memory, nothing is written for a channel until something is published to it;
an incremental sweep deletes publications past their TTL and streams idle for the
meta TTL, and gives the freed pages back to the file system (``auto_vacuum``).
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from pushwire.brokers.memory import Append
from pushwire.brokers.memory_history import DEFAULT_META_TTL_SECONDS
from pushwire.core.broker import HistoryOptions
from pushwire.core.history import HistoryPage, Publication, StreamPosition, new_epoch

__all__ = ["SqliteHistoryStore"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS store (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS streams (
    channel TEXT PRIMARY KEY,
    epoch TEXT NOT NULL,
    top INTEGER NOT NULL,
    updated REAL NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS publications (
    channel TEXT NOT NULL,
    offset INTEGER NOT NULL,
    time REAL NOT NULL,
    event TEXT,
    data BLOB NOT NULL,
    publisher BLOB,
    expires REAL,
    PRIMARY KEY (channel, offset)
) WITHOUT ROWID;
"""
_INDEXES = """
CREATE INDEX IF NOT EXISTS publications_expires ON publications (expires);
CREATE INDEX IF NOT EXISTS streams_updated ON streams (updated);
"""
# Cached stream tops: enough for every busy channel, bounded for made-up ones.
_MAX_CACHED_TOPS = 50_000
# A file from before publications had an expiry: they expire a day after they were made.
_LEGACY_TTL_SECONDS = 86400.0


#: The size the write-ahead log file is cut back to when it restarts.
WAL_SIZE_LIMIT_BYTES = 4 << 20


class SqliteHistoryStore:
    """Streams and publications in two tables; tops of published channels cached."""

    __slots__ = (
        "_checkpointer",
        "_db",
        "_epoch",
        "_meta_ttl",
        "_path",
        "_reader",
        "_tops",
        "_watched",
    )

    def __init__(self, path: Path, *, meta_ttl_seconds: float = DEFAULT_META_TTL_SECONDS) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA auto_vacuum=INCREMENTAL")  # takes effect for a new file only
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA wal_autocheckpoint=0")  # see checkpoint()
        # The log is reused from its start once a checkpoint has copied all of it; without
        # a limit the file keeps its high-water size for ever (50 MB after a soak).
        db.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT_BYTES}")
        self._path = path
        self._checkpointer: sqlite3.Connection | None = None
        db.executescript(_SCHEMA)
        _upgrade(db)
        db.executescript(_INDEXES)
        self._meta_ttl = meta_ttl_seconds
        self._tops: dict[str, StreamPosition] = {}
        self._watched: set[str] = set()
        row = db.execute("SELECT value FROM store WHERE key = 'epoch'").fetchone()
        self._epoch = row[0] if row is not None else self._new_store_epoch()
        # Writes go through _db, reads through _reader: a read sees only what is
        # committed, never a group being written.
        self._reader = sqlite3.connect(path, isolation_level=None, check_same_thread=False)

    def _new_store_epoch(self) -> str:
        """The epoch channels without a stream report, and new streams start in; kept."""
        epoch = new_epoch()
        self._db.execute(
            "INSERT INTO store (key, value) VALUES ('epoch', ?)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (epoch,),
        )
        return epoch

    def top(self, channel: str) -> StreamPosition:
        """The channel's top as committed (for readers on the event loop).

        Only the writer fills the cache: a reader that cached what it read could put
        back an older top just after the writer stored a newer one.
        """
        top = self._tops.get(channel)
        return top if top is not None else self._stored_top(self._reader, channel)

    def _top(self, db: sqlite3.Connection, channel: str) -> StreamPosition:
        """The channel's top, for the writer (cached)."""
        top = self._tops.get(channel)
        if top is None:
            top = self._stored_top(db, channel)
            if top.offset:
                self._cache(channel, top)
        return top

    def _stored_top(self, db: sqlite3.Connection, channel: str) -> StreamPosition:
        row = db.execute("SELECT epoch, top FROM streams WHERE channel = ?", (channel,)).fetchone()
        if row is None:
            return StreamPosition(self._epoch, 0)  # nothing stored, nothing cached
        return StreamPosition(row[0], row[1])

    def _cache(self, channel: str, top: StreamPosition) -> None:
        if len(self._tops) >= _MAX_CACHED_TOPS and channel not in self._tops:
            self._tops.clear()
        self._tops[channel] = top

    #: One commit per event-loop iteration: the broker groups appends (``append_many``).
    commits_in_groups = True

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
        return self.append_many([Append(channel, data, event, options, publisher)], now)[0]

    def append_many(self, batch: list[Append], now: float) -> list[Publication]:
        """Store a batch in one transaction: all of it, or (on an error) none of it."""
        db = self._db
        tops: dict[str, StreamPosition] = {}  # this batch's view of each channel's top
        created: set[str] = set()
        rows = []
        trims: dict[str, tuple[int, int]] = {}  # channel -> (top, size) after the batch
        publications = []
        for append in batch:
            channel = append.channel
            previous = tops.get(channel) or self._top(db, channel)
            if previous.offset == 0 and previous.epoch == self._epoch:
                created.add(channel)
            position = tops[channel] = StreamPosition(previous.epoch, previous.offset + 1)
            size = append.options.size
            if size > 0:
                expires = now + append.options.ttl_seconds
                rows.append(
                    (channel, position.offset, now, append.event, append.data,
                     append.publisher, expires)
                )  # fmt: skip
            trims[channel] = (position.offset, size)
            publications.append(
                Publication(channel, position, append.data, append.event, now, append.publisher)
            )
        db.execute("BEGIN")
        try:
            for channel, position in tops.items():
                if channel in created:
                    db.execute(
                        "INSERT INTO streams (channel, epoch, top, updated) VALUES (?, ?, ?, ?)"
                        " ON CONFLICT (channel) DO UPDATE SET top = excluded.top,"
                        " updated = excluded.updated",
                        (channel, position.epoch, position.offset, now),
                    )
                else:
                    db.execute(
                        "UPDATE streams SET top = ?, updated = ? WHERE channel = ?",
                        (position.offset, now, channel),
                    )
            db.executemany(
                "INSERT INTO publications"
                " (channel, offset, time, event, data, publisher, expires)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            for channel, (top, size) in trims.items():
                db.execute(
                    "DELETE FROM publications WHERE channel = ? AND offset <= ?",
                    (channel, top - size),
                )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        for channel, position in tops.items():
            self._cache(channel, position)
        return publications

    def checkpoint(self) -> None:
        """Copy the write-ahead log into the database file; called on another thread.

        Automatic checkpoints are off: they would run inside a commit, on the event
        loop, and can take milliseconds. PASSIVE never waits for the writer.
        """
        if self._checkpointer is None:
            self._checkpointer = sqlite3.connect(
                self._path, isolation_level=None, check_same_thread=False
            )
        self._checkpointer.execute("PRAGMA wal_checkpoint(PASSIVE)")

    def read(
        self,
        channel: str,
        since: StreamPosition | None,
        limit: int,
        options: HistoryOptions,
        now: float,
    ) -> HistoryPage:
        top = self.top(channel)
        if limit <= 0 or top.offset == 0 or (since is not None and since.epoch != top.epoch):
            return HistoryPage((), top)
        oldest_allowed = now - options.ttl_seconds
        if since is None:
            rows = self._reader.execute(
                "SELECT offset, time, event, data, publisher FROM publications"
                " WHERE channel = ? AND time >= ? ORDER BY offset DESC LIMIT ?",
                (channel, oldest_allowed, limit),
            ).fetchall()
            rows.reverse()
        else:
            rows = self._reader.execute(
                "SELECT offset, time, event, data, publisher FROM publications"
                " WHERE channel = ? AND offset > ? AND time >= ? ORDER BY offset LIMIT ?",
                (channel, since.offset, oldest_allowed, limit),
            ).fetchall()
        publications = tuple(
            Publication(
                channel,
                StreamPosition(top.epoch, offset),
                bytes(data),
                event,
                time,
                None if publisher is None else bytes(publisher),
            )
            for offset, time, event, data, publisher in rows
        )
        return HistoryPage(publications, top)

    def watch(self, channel: str) -> None:
        self._watched.add(channel)

    def unwatch(self, channel: str, now: float) -> None:
        self._watched.discard(channel)
        if self._top(self._db, channel).offset:  # published to: its idle time starts now
            self._db.execute(
                "UPDATE streams SET updated = max(updated, ?) WHERE channel = ?", (now, channel)
            )

    def sweep(self, now: float, budget: int = 1000) -> int:
        """Delete expired publications and idle streams, ``budget`` rows of each at most."""
        db = self._db
        db.execute("BEGIN")
        try:
            db.execute(
                "DELETE FROM publications WHERE (channel, offset) IN"
                " (SELECT channel, offset FROM publications WHERE expires < ? LIMIT ?)",
                (now, budget),
            )
            idle = db.execute(
                "SELECT channel FROM streams WHERE updated < ? ORDER BY updated LIMIT ?",
                (now - self._meta_ttl, budget),
            ).fetchall()
            forgotten = 0
            for (channel,) in idle:
                if channel in self._watched:
                    db.execute("UPDATE streams SET updated = ? WHERE channel = ?", (now, channel))
                    continue
                db.execute("DELETE FROM streams WHERE channel = ?", (channel,))
                db.execute("DELETE FROM publications WHERE channel = ?", (channel,))
                self._tops.pop(channel, None)
                forgotten += 1
            if forgotten:
                # A stream made again must not reuse old offsets under an old epoch.
                self._epoch = self._new_store_epoch()
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("PRAGMA incremental_vacuum(256)")
        return forgotten

    def stream_count(self) -> int:
        return int(self._reader.execute("SELECT count(*) FROM streams").fetchone()[0])

    def publication_count(self) -> int:
        return int(self._reader.execute("SELECT count(*) FROM publications").fetchone()[0])

    def close(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.close()
            self._checkpointer = None
        self._reader.close()
        self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # leave a small file behind
        self._db.close()


def _upgrade(db: sqlite3.Connection) -> None:
    """Add the columns a file written by an earlier pushwire lacks."""
    publications = {row[1] for row in db.execute("PRAGMA table_info(publications)")}
    if "publisher" not in publications:
        db.execute("ALTER TABLE publications ADD COLUMN publisher BLOB")
    if "expires" not in publications:
        db.execute("ALTER TABLE publications ADD COLUMN expires REAL")
        db.execute(
            "UPDATE publications SET expires = time + ? WHERE expires IS NULL",
            (_LEGACY_TTL_SECONDS,),
        )
    streams = {row[1] for row in db.execute("PRAGMA table_info(streams)")}
    if "updated" not in streams:
        db.execute("ALTER TABLE streams ADD COLUMN updated REAL NOT NULL DEFAULT 0")
        # Idle from now on, not since 1970: an upgrade must not forget every stream.
        db.execute("UPDATE streams SET updated = ?", (time.time(),))
