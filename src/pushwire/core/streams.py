"""Opening a stream over several channels at once, for SSE and long-polling.

Both resume every channel of a request from one stream cursor. Opening a stream
works out, channel by channel, what the client missed, and merges the replay into
one sequence in which every step carries the stream cursor as of that step.
"""

from __future__ import annotations

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

    The caller must register its subscriber with ``node.hub.group(start.states)``
    without awaiting, so that live delivery continues exactly after the replay.

    Raises:
        InvalidCursorError: if ``cursor`` was not made for this many channels.
    """
    since = None if cursor is None else decode_stream_cursor(cursor, len(channels))
    try:
        return await _open(node, channels, since)
    except BaseException:
        for channel in channels:
            state = node.hub.channel(channel)
            if state is not None:
                node.hub.release(state)
        raise


async def _open(node: Node, channels: list[str], since: list[StreamPosition] | None) -> StreamStart:
    for _ in range(_ATTEMPTS):
        states = tuple([await node.open_channel(channel) for channel in channels])
        if since is None:
            positions = [state.delivered for state in states]
            return StreamStart(states, (), encode_stream_cursor(positions))
        live_from = [state.delivered for state in states]
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
    """Replay steps in publication-time order; a gap jumps its channel to live."""
    positions = list(since)
    steps: list[ReplayStep] = []
    for index, (state, recovery) in enumerate(zip(states, recoveries, strict=True)):
        if not recovery.recovered:
            positions[index] = state.delivered
            steps.append(ReplayStep(state.name, None, _cursor(positions), state.delivered))
    replay = sorted(
        (publication.time, index, publication.position.offset, publication)
        for index, recovery in enumerate(recoveries)
        for publication in recovery.publications
    )
    for _, index, _, publication in replay:
        positions[index] = publication.position
        steps.append(
            ReplayStep(publication.channel, publication, _cursor(positions), publication.position)
        )
    return tuple(steps)
