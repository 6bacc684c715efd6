"""What did a returning subscriber miss? Pure functions over history pages.

A subscriber holds the position of the last publication it received. Recovery
succeeds only if every publication after that position, up to the point where
live delivery takes over, is still in history under the same epoch.
"""

from __future__ import annotations

from dataclasses import dataclass

from pushwire.core.history import HistoryPage, Publication, StreamPosition

__all__ = ["Recovery", "recover"]


@dataclass(frozen=True, slots=True)
class Recovery:
    """The publications to replay, and whether they are all that was missed.

    When ``recovered`` is false there is a gap (history was trimmed, expired, or
    its epoch changed): ``publications`` is empty and the client must reload state.
    """

    publications: tuple[Publication, ...]
    recovered: bool


def recover(since: StreamPosition, page: HistoryPage, live_from: StreamPosition) -> Recovery:
    """Decide what to replay to a subscriber that last saw ``since``.

    Args:
        since: the subscriber's cursor.
        page: history read after ``since`` (only publications after it matter).
        live_from: the last position this node has delivered live; publications
            after it will arrive through live delivery, so they are not replayed.
    """
    if since.epoch != live_from.epoch or since.offset > live_from.offset:
        return Recovery((), recovered=False)
    wanted = live_from.offset - since.offset
    if wanted == 0:
        return Recovery((), recovered=True)
    replay = tuple(
        publication
        for publication in page.publications
        if since.offset < publication.position.offset <= live_from.offset
        and publication.position.epoch == since.epoch
    )
    if len(replay) != wanted:
        return Recovery((), recovered=False)
    return Recovery(replay, recovered=True)
