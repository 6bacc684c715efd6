"""Long-polling: a request that waits until there is something after its cursor.

The waiter sits in its stream group; the hub answers every waiter of a group
with the same encoded body, then each request's connection carries on with its
next request. ``timeout=0`` makes it a short poll.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import orjson

from pushwire.core.hub import StreamGroup
from pushwire.core.streams import StreamStart
from pushwire.protocol.codec import message_json

__all__ = ["LongPollWaiter", "replay_body"]


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
    """A poll waiting in ``group``; answered by the hub or by its timeout."""

    __slots__ = ("_respond", "_timer", "group")

    def __init__(
        self, group: StreamGroup, respond: Callable[[bytes], None], timeout_seconds: float
    ) -> None:
        self.group = group
        self._respond: Callable[[bytes], None] | None = respond
        self._timer = asyncio.get_running_loop().call_later(timeout_seconds, self._time_out)

    def answer(self, body: bytes) -> None:
        respond, self._respond = self._respond, None
        self._timer.cancel()
        if respond is not None:
            respond(body)

    def expire(self) -> None:
        """Answer now with no messages and the current cursor (timeout, or shutdown)."""
        self._time_out()

    def _time_out(self) -> None:
        self.group.pollers.discard(self)
        self.answer(orjson.dumps({"messages": [], "cursor": self.group.cursor()}))

    def cancel(self) -> None:
        """The client went away: leave the group without answering."""
        self._respond = None
        self._timer.cancel()
        self.group.pollers.discard(self)
