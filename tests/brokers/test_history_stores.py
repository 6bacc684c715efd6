"""The history-store contract, run against the memory and the SQLite store."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from pushwire.brokers.memory import HistoryStore
from pushwire.brokers.memory_history import MemoryHistoryStore
from pushwire.brokers.sqlite_history import SqliteHistoryStore
from pushwire.core.broker import HistoryOptions
from pushwire.core.history import StreamPosition

KEEP_THREE = HistoryOptions(size=3, ttl_seconds=100)


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[HistoryStore]:
    made: HistoryStore = (
        MemoryHistoryStore() if request.param == "memory" else SqliteHistoryStore(tmp_path / "h.db")
    )
    yield made
    made.close()


def test_offsets_count_up_from_one_in_one_epoch(store: HistoryStore) -> None:
    first = store.append("c", b"1", None, KEEP_THREE, now=0)
    second = store.append("c", b"2", "e", KEEP_THREE, now=0)

    assert first.position.offset == 1
    assert second.position.offset == 2
    assert first.position.epoch == second.position.epoch
    assert store.top("c") == second.position


def test_only_the_newest_n_are_kept(store: HistoryStore) -> None:
    for n in range(5):
        store.append("c", b"%d" % n, None, KEEP_THREE, now=0)

    page = store.read("c", None, 10, KEEP_THREE, now=0)

    assert [p.data for p in page.publications] == [b"2", b"3", b"4"]
    assert page.top.offset == 5


def test_reading_since_a_position_returns_only_newer_ones(store: HistoryStore) -> None:
    first = store.append("c", b"1", None, KEEP_THREE, now=0)
    store.append("c", b"2", "named", KEEP_THREE, now=0)

    page = store.read("c", first.position, 10, KEEP_THREE, now=0)

    assert [(p.data, p.event) for p in page.publications] == [(b"2", "named")]


def test_expired_publications_are_not_returned(store: HistoryStore) -> None:
    store.append("c", b"old", None, KEEP_THREE, now=0)
    store.append("c", b"new", None, KEEP_THREE, now=150)

    page = store.read("c", None, 10, KEEP_THREE, now=160)

    assert [p.data for p in page.publications] == [b"new"]


def test_another_epoch_reads_nothing(store: HistoryStore) -> None:
    store.append("c", b"1", None, KEEP_THREE, now=0)

    page = store.read("c", StreamPosition("ffffffff", 0), 10, KEEP_THREE, now=0)

    assert page.publications == ()


def test_channels_are_independent(store: HistoryStore) -> None:
    a = store.append("a", b"1", None, KEEP_THREE, now=0)
    b = store.append("b", b"1", None, KEEP_THREE, now=0)

    assert a.position.offset == b.position.offset == 1
    assert [p.data for p in store.read("a", None, 10, KEEP_THREE, now=0).publications] == [b"1"]
    # Epochs tell incarnations of one channel's stream apart; channels may share one.


def test_sqlite_history_and_epoch_survive_reopening(tmp_path: Path) -> None:
    store = SqliteHistoryStore(tmp_path / "h.db")
    published = store.append("c", b"1", None, KEEP_THREE, now=0)
    store.close()

    reopened = SqliteHistoryStore(tmp_path / "h.db")
    page = reopened.read("c", None, 10, KEEP_THREE, now=0)
    after = reopened.append("c", b"2", None, KEEP_THREE, now=0)
    reopened.close()

    assert page.publications[0].position == published.position
    assert after.position == StreamPosition(published.position.epoch, 2)


def test_memory_history_starts_a_new_epoch_per_store() -> None:
    before = MemoryHistoryStore().append("c", b"1", None, KEEP_THREE, now=0)
    after = MemoryHistoryStore().append("c", b"1", None, KEEP_THREE, now=0)

    assert before.position.epoch != after.position.epoch


def test_the_publisher_is_kept_with_the_publication(store: HistoryStore) -> None:
    store.append("c", b"1", None, KEEP_THREE, now=0, publisher=b'{"user":"a","info":null}')
    store.append("c", b"2", None, KEEP_THREE, now=0)

    page = store.read("c", None, 10, KEEP_THREE, now=0)

    assert [p.publisher for p in page.publications] == [b'{"user":"a","info":null}', None]


def test_a_history_file_from_before_publishers_is_upgraded(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    old = sqlite3.connect(path)
    old.executescript(
        "CREATE TABLE streams (channel TEXT PRIMARY KEY, epoch TEXT NOT NULL,"
        " top INTEGER NOT NULL) WITHOUT ROWID;"
        "CREATE TABLE publications (channel TEXT NOT NULL, offset INTEGER NOT NULL,"
        " time REAL NOT NULL, event TEXT, data BLOB NOT NULL,"
        " PRIMARY KEY (channel, offset)) WITHOUT ROWID;"
        "INSERT INTO streams VALUES ('c', 'abcd1234', 1);"
        "INSERT INTO publications VALUES ('c', 1, 0, NULL, X'31');"
    )
    old.commit()
    old.close()

    store = SqliteHistoryStore(path)
    store.append("c", b"2", None, KEEP_THREE, now=0, publisher=b"{}")
    page = store.read("c", None, 10, KEEP_THREE, now=0)
    store.close()

    assert [(p.data, p.publisher) for p in page.publications] == [(b"1", None), (b"2", b"{}")]
