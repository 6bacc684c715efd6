"""The embedded broker over SQLite commits a loop iteration's publications together."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from pushwire.brokers.memory import MemoryBroker
from pushwire.brokers.sqlite_history import WAL_SIZE_LIMIT_BYTES, SqliteHistoryStore
from pushwire.core.broker import HistoryOptions
from pushwire.core.history import Publication
from tests.contract.conftest import RecordingEvents

KEEP = HistoryOptions(size=1000, ttl_seconds=3600)


async def test_publications_made_at_once_are_committed_in_order_and_survive_reopening(
    tmp_path: Path,
) -> None:
    path = tmp_path / "history.sqlite3"
    broker = MemoryBroker(SqliteHistoryStore(path))
    events = RecordingEvents()
    await broker.start(events)
    calls = [
        broker.publish(channel, b"%d" % n, event=None, options=KEEP)
        for n in range(300)
        for channel in ("a", "b")
    ]

    published = await asyncio.gather(*calls)
    # What a crash would leave: the file as written, read by another connection.
    on_disk = sqlite3.connect(path).execute(
        "SELECT channel, count(*), max(offset) FROM publications GROUP BY channel"
    )
    counts = sorted(on_disk.fetchall())
    await broker.close()

    assert [p.position.offset for p in published if p.channel == "a"] == list(range(1, 301))
    assert [p.data for p in events.on("b")] == [b"%d" % n for n in range(300)]
    assert counts == [("a", 300, 300), ("b", 300, 300)]


async def test_a_failed_commit_fails_every_publication_of_its_group(tmp_path: Path) -> None:
    store = SqliteHistoryStore(tmp_path / "history.sqlite3")
    broker = MemoryBroker(store)
    events = RecordingEvents()
    await broker.start(events)
    await broker.publish("a", b"1", event=None, options=KEEP)
    # A group that cannot be written: the same channel and offset already stored.
    store._db.execute(
        "INSERT INTO publications (channel, offset, time, data) VALUES ('a', 2, 0, x'00')"
    )

    results = await asyncio.gather(
        *(broker.publish("a", b"x", event=None, options=KEEP) for _ in range(3)),
        return_exceptions=True,
    )
    later = await broker.publish("b", b"fine", event=None, options=KEEP)
    await broker.close()

    assert all(isinstance(r, sqlite3.IntegrityError) for r in results)
    assert [p.data for p in events.on("a")] == [b"1"]  # nothing of the failed group is sent
    assert later.position.offset == 1


async def test_publishing_after_close_is_refused(tmp_path: Path) -> None:
    broker = MemoryBroker(SqliteHistoryStore(tmp_path / "history.sqlite3"))
    await broker.start(RecordingEvents())
    await broker.close()

    with pytest.raises(Exception, match="not started"):
        await broker.publish("a", b"1", event=None, options=KEEP)


async def test_publish_soon_joins_the_group_in_call_order_and_is_told_after_the_commit(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "history.sqlite3"
    broker = MemoryBroker(SqliteHistoryStore(path))
    await broker.start(RecordingEvents())
    told: list[tuple[int, int]] = []  # (n, rows on disk when told)

    def on_done(n: int) -> Callable[[Publication | None, BaseException | None], None]:
        def done(publication: Publication | None, exc: BaseException | None) -> None:
            assert publication is not None
            assert exc is None
            rows = sqlite3.connect(path).execute("SELECT count(*) FROM publications")
            told.append((n, rows.fetchone()[0]))
            if n == 1:
                raise RuntimeError("a caller's bug")

        return done

    for n in range(3):
        broker.publish_soon(
            "a", b"%d" % n, event=None, options=KEEP, publisher=None, on_done=on_done(n)
        )
    awaited = await broker.publish("a", b"3", event=None, options=KEEP)
    await broker.close()

    assert told == [(0, 4), (1, 4), (2, 4)]  # all four committed before anyone is told
    assert awaited.position.offset == 4
    assert "a publication's callback failed" in caplog.text


async def test_the_write_ahead_log_shrinks_back_after_a_burst(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite3"
    store = SqliteHistoryStore(path)
    broker = MemoryBroker(store)
    await broker.start(RecordingEvents())
    wal = path.with_name(path.name + "-wal")
    data = b"x" * 4000
    # 16 MB in one loop iteration: one transaction, which no checkpoint can cut short.
    await asyncio.gather(
        *(broker.publish(f"c{n % 100}", data, event=None, options=KEEP) for n in range(4000))
    )
    grown = wal.stat().st_size
    store.checkpoint()  # copies all of it: the next write restarts the log, and cuts it
    await broker.publish("after", b"1", event=None, options=KEEP)
    after = wal.stat().st_size
    await broker.close()

    assert grown > 2 * WAL_SIZE_LIMIT_BYTES
    assert after <= WAL_SIZE_LIMIT_BYTES
