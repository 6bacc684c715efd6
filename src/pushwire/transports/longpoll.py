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
from pushwire.core.identity import Identity
from pushwire.core.presence import Join, Leave
from pushwire.core.streams import StreamStart
from pushwire.errors import Disconnect
from pushwire.protocol.codec import message_json, presence_json
from pushwire.transports.base import Clock, LoopClock, Ticker

__all__ = ["POLL_ANSWERS", "LongPollWaiter", "PollPresence", "replay_body"]


class _PollFormat:
    """One answer for every waiting poll of a feed: the messages, gaps and the new cursor."""

    __slots__ = ()

    answers_once = True
    transport = "longpoll"

    def encode(self, batch: Batch, feed: Feed) -> bytes:
        state = batch.state
        items = batch.items
        body: dict[str, object] = {
            "messages": [orjson.Fragment(m) for m in batch.messages if m is not None],
            "cursor": feed.cursor_at(state, items[-1].position),
        }
        if any(isinstance(item, Gap) for item in items):
            body["gaps"] = [state.name]
        events = [
            orjson.Fragment(
                presence_json(
                    "join" if isinstance(item, Join) else "leave",
                    item.channel,
                    item.user,
                    item.info,
                )
            )
            for item in items
            if isinstance(item, Join | Leave)
        ]
        if events:
            body["events"] = events
        return orjson.dumps(body)


POLL_ANSWERS = _PollFormat()


def replay_body(start: StreamStart, events: list[bytes] | None = None) -> bytes:
    """The answer to a poll that has something (or nothing) to replay right away.

    ``events`` are join or leave objects to add (the poller's own joins).
    """
    messages = [
        orjson.Fragment(message_json(p.channel, p.position.cursor, p.event, p.data, p.publisher))
        for step in start.steps
        if (p := step.publication) is not None
    ]
    body: dict[str, object] = {"messages": messages, "cursor": start.cursor}
    if gaps := start.gaps:
        body["gaps"] = gaps
    if events:
        body["events"] = [orjson.Fragment(event) for event in events]
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


class PollPresence:
    """Keeps a polling user among a channel's members between two polls.

    A poll lasts a moment; a user who polls again within ``grace_seconds`` of the
    last answer has not left. One timer sweeps every user who stopped polling.
    """

    __slots__ = ("_clock", "_deadlines", "_grace", "_member_left", "_ticker", "_waiting")

    def __init__(
        self,
        grace_seconds: float,
        member_left: Callable[[str, Identity], None],
        *,
        clock: Clock | None = None,
    ) -> None:
        self._grace = grace_seconds
        self._member_left = member_left
        self._clock = clock or LoopClock()
        # (channel, user) -> the identity, and when it leaves if it polls no more.
        self._deadlines: dict[tuple[str, str], tuple[Identity, float]] = {}
        self._waiting: dict[tuple[str, str], int] = {}  # polls of the user still open
        self._ticker = Ticker(min(max(grace_seconds / 4, 0.25), 5.0), self._sweep, clock=clock)

    def start(self) -> None:
        self._ticker.start()

    def stop(self) -> None:
        self._ticker.stop()

    def polling(
        self, channels: tuple[str, ...], identity: Identity, joined: Callable[[str], None]
    ) -> Callable[[], None]:
        """A poll of ``identity`` opened; returns what to call once it is answered or gone.

        ``joined(channel)`` is called for each channel the user was not yet on.
        """
        user = identity.user
        if user is None:
            return _nothing
        keys = [(channel, user) for channel in channels]
        for key in keys:
            if key not in self._deadlines and key not in self._waiting:
                joined(key[0])
            self._deadlines.pop(key, None)
            self._waiting[key] = self._waiting.get(key, 0) + 1

        def done() -> None:
            until = self._clock.time() + self._grace
            for key in keys:
                left = self._waiting.get(key, 0) - 1
                if left > 0:
                    self._waiting[key] = left
                else:
                    self._waiting.pop(key, None)
                    self._deadlines[key] = (identity, until)

        return done

    def leave(self, channels: tuple[str, ...], identity: Identity) -> list[str]:
        """The poller says goodbye (``?leave=1``): leave now, not after the grace."""
        user = identity.user
        left: list[str] = []
        if user is None:
            return left
        for channel in channels:
            key = (channel, user)
            if self._deadlines.pop(key, None) is not None or self._waiting.pop(key, 0):
                self._member_left(channel, identity)
                left.append(channel)
        return left

    def _sweep(self) -> None:
        now = self._clock.time()
        gone = [key for key, (_, until) in self._deadlines.items() if until <= now]
        for key in gone:
            identity, _ = self._deadlines.pop(key)
            self._member_left(key[0], identity)


def _nothing() -> None:
    pass
