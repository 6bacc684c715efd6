"""Long-polling: a request that waits until there is something after its cursor.

The waiter sits in its feed; the hub answers every waiter of a feed with the
same encoded body, then each request's connection carries on with its next
request. ``timeout=0`` makes it a short poll.
"""

from __future__ import annotations

from collections.abc import Callable

import orjson

from pushwire.core.history import Gap
from pushwire.core.hub import Batch, Feed
from pushwire.core.streams import StreamStart
from pushwire.errors import Disconnect
from pushwire.protocol.codec import message_json
from pushwire.transports.base import Clock, LoopClock

__all__ = ["POLL_ANSWERS", "LongPollWaiter", "replay_body"]


class _PollFormat:
    """One answer for every waiting poll of a feed: the messages, gaps and the new cursor."""

    __slots__ = ()

    answers_once = True

    def encode(self, batch: Batch, feed: Feed) -> bytes:
        state = batch.state
        items = batch.items
        body: dict[str, object] = {
            "messages": [orjson.Fragment(m) for m in batch.messages if m is not None],
            "cursor": feed.cursor_at(state, items[-1].position),
        }
        if any(isinstance(item, Gap) for item in items):
            body["gaps"] = [state.name]
        return orjson.dumps(body)


POLL_ANSWERS = _PollFormat()


def replay_body(start: StreamStart) -> bytes:
    """The answer to a poll that has something (or nothing) to replay right away."""
    messages = [
        orjson.Fragment(message_json(p.channel, p.position.cursor, p.event, p.data))
        for step in start.steps
        if (p := step.publication) is not None
    ]
    body: dict[str, object] = {"messages": messages, "cursor": start.cursor}
    if gaps := start.gaps:
        body["gaps"] = gaps
    return orjson.dumps(body)


class LongPollWaiter:
    """A poll waiting in ``feed``; answered by the hub, by its timeout or at shutdown."""

    __slots__ = ("_leave", "_respond", "_timer", "feed")

    name = "longpoll"
    unidirectional = True

    def __init__(
        self,
        feed: Feed,
        respond: Callable[[bytes], None],
        timeout_seconds: float,
        *,
        leave: Callable[[LongPollWaiter], None],
        clock: Clock | None = None,
    ) -> None:
        """
        Args:
            respond: sends the answer body; called at most once.
            leave: takes the waiter out of its feed (``hub.leave``), when it is
                answered other than by the hub.
        """
        self.feed = feed
        self._respond: Callable[[bytes], None] | None = respond
        self._leave = leave
        self._timer = (clock or LoopClock()).call_later(timeout_seconds, self.expire)

    def write(self, data: bytes) -> bool:
        """The hub's answer (it has already taken this waiter out of the feed)."""
        respond, self._respond = self._respond, None
        self._timer.cancel()
        if respond is not None:
            respond(data)
        return True

    def close(self, reason: Disconnect) -> None:
        """Shutting down: answer now with what the client has, so it polls again elsewhere."""
        self.expire()

    def expire(self) -> None:
        """Answer with no messages and the current cursor (timeout, or shutdown)."""
        if self._respond is None:
            return
        self._leave(self)
        self.write(orjson.dumps({"messages": [], "cursor": self.feed.cursor()}))

    def cancel(self) -> None:
        """The client went away: leave the feed without answering."""
        self._respond = None
        self._timer.cancel()
        self._leave(self)
