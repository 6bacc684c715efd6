"""History kept in a SQLite file under the data directory: survives restarts.

WAL mode with ``synchronous=NORMAL``: a commit reaches the OS before the
publication is fanned out, so a crashed process never re-issues an offset that
clients already hold (a power cut may still lose the last commits; the epoch
survives, and the lost offsets are reported as a gap, never reused silently).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from pushwire.core.broker import HistoryOptions
from pushwire.core.history import HistoryPage, Publication, StreamPosition, new_epoch

__all__ = ["SqliteHistoryStore"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS streams (
    channel TEXT PRIMARY KEY,
    epoch TEXT NOT NULL,
    top INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS publications (
    channel TEXT NOT NULL,
    offset INTEGER NOT NULL,
    time REAL NOT NULL,
    event TEXT,
    data BLOB NOT NULL,
    publisher BLOB,
    PRIMARY KEY (channel, offset)
) WITHOUT ROWID;
"""

# Expired rows of a channel are purged on every Nth append, not on each one.
_PURGE_EVERY = 64


class SqliteHistoryStore:
    """Streams and publications in two tables; stream tops cached in memory."""

    __slots__ = ("_db", "_tops")

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(publications)")}
        if "publisher" not in columns:  # a file written before publishers were kept
            self._db.execute("ALTER TABLE publications ADD COLUMN publisher BLOB")
        self._tops: dict[str, StreamPosition] = {}

    def top(self, channel: str) -> StreamPosition:
        top = self._tops.get(channel)
        if top is None:
            row = self._db.execute(
                "SELECT epoch, top FROM streams WHERE channel = ?", (channel,)
            ).fetchone()
            if row is None:
                top = StreamPosition(new_epoch(), 0)
                self._db.execute(
                    "INSERT INTO streams (channel, epoch, top) VALUES (?, ?, 0)",
                    (channel, top.epoch),
                )
            else:
                top = StreamPosition(row[0], row[1])
            if len(self._tops) > 100_000:
                self._tops.clear()
            self._tops[channel] = top
        return top

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
        previous = self.top(channel)
        position = StreamPosition(previous.epoch, previous.offset + 1)
        db = self._db
        db.execute("BEGIN")
        try:
            db.execute("UPDATE streams SET top = ? WHERE channel = ?", (position.offset, channel))
            if options.size > 0:
                db.execute(
                    "INSERT INTO publications (channel, offset, time, event, data, publisher)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (channel, position.offset, now, event, data, publisher),
                )
            db.execute(
                "DELETE FROM publications WHERE channel = ? AND offset <= ?",
                (channel, position.offset - options.size),
            )
            if position.offset % _PURGE_EVERY == 0:
                db.execute(
                    "DELETE FROM publications WHERE channel = ? AND time < ?",
                    (channel, now - options.ttl_seconds),
                )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        self._tops[channel] = position
        return Publication(channel, position, data, event, now, publisher)

    def read(
        self,
        channel: str,
        since: StreamPosition | None,
        limit: int,
        options: HistoryOptions,
        now: float,
    ) -> HistoryPage:
        top = self.top(channel)
        if limit <= 0 or (since is not None and since.epoch != top.epoch):
            return HistoryPage((), top)
        oldest_allowed = now - options.ttl_seconds
        if since is None:
            rows = self._db.execute(
                "SELECT offset, time, event, data, publisher FROM publications"
                " WHERE channel = ? AND time >= ? ORDER BY offset DESC LIMIT ?",
                (channel, oldest_allowed, limit),
            ).fetchall()
            rows.reverse()
        else:
            rows = self._db.execute(
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

    def close(self) -> None:
        self._db.close()
