"""Bounded history state: nothing kept for idle channels, expiry without readers, epochs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pushwire.brokers.memory_history import MemoryHistoryStore
from pushwire.brokers.sqlite_history import SqliteHistoryStore
from pushwire.core.broker import HistoryOptions
from pushwire.core.history import StreamPosition

KEEP_TEN_SECONDS = HistoryOptions(size=100, ttl_seconds=10)
META_TTL = 100.0
Store = MemoryHistoryStore | SqliteHistoryStore


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    made: Store = (
        MemoryHistoryStore(meta_ttl_seconds=META_TTL)
        if request.param == "memory"
        else SqliteHistoryStore(tmp_path / "h.db", meta_ttl_seconds=META_TTL)
    )
    yield made
    made.close()


def test_a_channel_only_asked_about_keeps_nothing(store: Store) -> None:
    for n in range(1000):
        store.top(f"made-up-{n}")
        store.read(f"made-up-{n}", StreamPosition("abcd", 5), 10, KEEP_TEN_SECONDS, now=0)
        store.watch(f"made-up-{n}")
        store.unwatch(f"made-up-{n}", now=0)

    assert store.stream_count() == 0


def test_an_unpublished_channels_position_holds_when_it_is_first_published(store: Store) -> None:
    before = store.top("quiet")

    first = store.append("quiet", b"1", None, KEEP_TEN_SECONDS, now=0)

    assert first.position == StreamPosition(before.epoch, 1)


def test_publications_past_their_ttl_go_even_if_nobody_reads(store: Store) -> None:
    for n in range(5):
        store.append("c", b"%d" % n, None, KEEP_TEN_SECONDS, now=0)

    store.sweep(now=5)
    kept = store.publication_count()
    store.sweep(now=11)

    assert kept == 5
    assert store.publication_count() == 0
    assert store.top("c").offset == 5  # the stream itself is kept until the meta TTL


def test_an_idle_stream_is_forgotten_and_never_reused_under_its_old_epoch(store: Store) -> None:
    old = store.append("c", b"1", None, KEEP_TEN_SECONDS, now=0)

    forgotten = store.sweep(now=META_TTL + 1)
    again = store.append("c", b"2", None, KEEP_TEN_SECONDS, now=META_TTL + 2)

    assert forgotten == 1
    assert store.stream_count() == 1
    assert again.position.offset == 1
    assert again.position.epoch != old.position.epoch  # old cursors cannot "recover" into it
    page = store.read("c", old.position, 10, KEEP_TEN_SECONDS, now=META_TTL + 2)
    assert page.publications == ()


def test_a_subscribed_stream_is_not_forgotten(store: Store) -> None:
    store.append("busy", b"1", None, KEEP_TEN_SECONDS, now=0)
    store.watch("busy")

    forgotten = store.sweep(now=META_TTL * 3)

    assert forgotten == 0
    assert store.top("busy").offset == 1


def test_idle_time_counts_from_when_the_last_subscriber_left(store: Store) -> None:
    store.append("c", b"1", None, KEEP_TEN_SECONDS, now=0)
    store.watch("c")
    store.unwatch("c", now=META_TTL * 2)

    early = store.sweep(now=META_TTL * 2 + 1)
    late = store.sweep(now=META_TTL * 3 + 1)

    assert (early, late) == (0, 1)


def test_one_sweep_does_a_bounded_amount_of_work(store: Store) -> None:
    for n in range(50):
        store.append(f"c{n}", b"1", None, KEEP_TEN_SECONDS, now=0)

    first = store.sweep(now=META_TTL + 1, budget=20)
    second = store.sweep(now=META_TTL + 1, budget=20)

    assert (first, second) == (20, 20)
    assert store.stream_count() == 10


def test_the_sqlite_store_keeps_its_epoch_for_unpublished_channels_across_a_restart(
    tmp_path: Path,
) -> None:
    first = SqliteHistoryStore(tmp_path / "h.db")
    before = first.top("never")
    first.close()

    second = SqliteHistoryStore(tmp_path / "h.db")
    after = second.top("never")
    second.close()

    assert before == after
