"""Recovery decisions, below the network: what a returning subscriber gets."""

from __future__ import annotations

from pushwire.core.history import HistoryPage, Publication, StreamPosition
from pushwire.core.recovery import recover


def _page(epoch: str, offsets: range, top: int) -> HistoryPage:
    publications = tuple(
        Publication("c", StreamPosition(epoch, n), b"%d" % n, None, float(n)) for n in offsets
    )
    return HistoryPage(publications, StreamPosition(epoch, top))


def test_everything_after_the_cursor_is_replayed_up_to_live_delivery() -> None:
    page = _page("e", range(4, 9), top=8)

    result = recover(StreamPosition("e", 3), page, live_from=StreamPosition("e", 7))

    assert result.recovered
    assert [p.position.offset for p in result.publications] == [4, 5, 6, 7]


def test_a_cursor_at_the_top_recovers_nothing_successfully() -> None:
    result = recover(StreamPosition("e", 5), _page("e", range(0), 5), StreamPosition("e", 5))

    assert result.recovered
    assert result.publications == ()


def test_missing_publications_make_a_gap() -> None:
    page = _page("e", range(6, 9), top=8)  # 4 and 5 were trimmed

    result = recover(StreamPosition("e", 3), page, StreamPosition("e", 8))

    assert not result.recovered
    assert result.publications == ()


def test_another_epoch_is_a_gap_even_with_matching_offsets() -> None:
    result = recover(
        StreamPosition("old", 3), _page("new", range(4, 6), 5), StreamPosition("new", 5)
    )

    assert not result.recovered


def test_a_cursor_from_the_future_is_a_gap() -> None:
    result = recover(StreamPosition("e", 9), _page("e", range(0), 5), StreamPosition("e", 5))

    assert not result.recovered
