"""Opening a stream over several channels at once, for SSE and long-polling.

Both resume every channel of a request from one stream cursor. Opening a stream
works out, channel by channel, what the client missed, and merges the replay into
one sequence in which every step carries the stream cursor as of that step.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

from pushwire.core.history import (
    Publication,
    StreamPosition,
    decode_stream_cursor,
    encode_stream_cursor,
)
from pushwire.core.hub import ChannelState
from pushwire.core.node import Node
from pushwire.core.recovery import Recovery

__all__ = ["ReplayStep", "StreamStart", "open_stream"]

# If live delivery moves on while recoveries are read, start over (bounded).
_ATTEMPTS = 5


@dataclass(frozen=True, slots=True)
class ReplayStep:
    """One publication to replay, or a gap on ``channel`` (``publication`` None)."""

    channel: str
    publication: Publication | None
    cursor: str  # the stream cursor once the client has this step
    position: StreamPosition  # the channel's own position once the client has this step


@dataclass(frozen=True, slots=True)
class StreamStart:
    """The channels' states, what to replay first, and the cursor live delivery continues from."""

    states: tuple[ChannelState, ...]
    steps: tuple[ReplayStep, ...]
    cursor: str

    @property
    def gaps(self) -> list[str]:
        return [step.channel for step in self.steps if step.publication is None]


async def open_stream(node: Node, channels: list[str], cursor: str | None) -> StreamStart:
    """Open ``channels`` (sorted, unique, validated) and replay from ``cursor`` if given.

    The channels come back held (see ``Node.open_channel``): the caller joins its
    sink with ``node.hub.join(format, start.states, sink)`` without awaiting, so
    that live delivery continues exactly after the replay, then gives the holds
    back with ``node.hub.release_all(start.states)``.

    Raises:
        InvalidCursorError: if ``cursor`` was not made for this many channels.
    """
    since = None if cursor is None else decode_stream_cursor(cursor, len(channels))
    states: list[ChannelState] = []
    try:
        for channel in channels:
            states.append(await node.open_channel(channel))
        return await _replay(node, tuple(states), since)
    except BaseException:
        node.hub.release_all(states)
        raise


async def _replay(
    node: Node, states: tuple[ChannelState, ...], since: list[StreamPosition] | None
) -> StreamStart:
    for _ in range(_ATTEMPTS):
        live_from = [state.delivered for state in states]
        if since is None:
            return StreamStart(states, (), encode_stream_cursor(live_from))
        recoveries = [
            await node.recover(state, position)
            for state, position in zip(states, since, strict=True)
        ]
        if [state.delivered for state in states] == live_from:
            return StreamStart(states, _merge(states, since, recoveries), _cursor(live_from))
    raise TimeoutError("live delivery kept moving while a stream was being opened")


def _cursor(positions: list[StreamPosition]) -> str:
    return encode_stream_cursor(positions)


def _merge(
    states: tuple[ChannelState, ...], since: list[StreamPosition], recoveries: list[Recovery]
) -> tuple[ReplayStep, ...]:
    """Replay steps across channels by publication time; a gap jumps its channel to live.

    ``Publication.time`` is the broker's clock, the same on every node, so every
    node replays in the same order. Each channel's own publications stay in
    offset order whatever their times say (a clock that steps back reorders
    nothing): a merge of the per-channel sequences, never a sort of all of them.
    """
    positions = list(since)
    steps: list[ReplayStep] = []
    for index, (state, recovery) in enumerate(zip(states, recoveries, strict=True)):
        if not recovery.recovered:
            positions[index] = state.delivered
            steps.append(ReplayStep(state.name, None, _cursor(positions), state.delivered))
    per_channel = [
        [(publication.time, index, publication) for publication in recovery.publications]
        for index, recovery in enumerate(recoveries)
    ]
    for _, index, publication in heapq.merge(*per_channel, key=_time_then_channel):
        positions[index] = publication.position
        steps.append(
            ReplayStep(publication.channel, publication, _cursor(positions), publication.position)
        )
    return tuple(steps)


def _time_then_channel(step: tuple[float, int, Publication]) -> tuple[float, int]:
    return step[0], step[1]
