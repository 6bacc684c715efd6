"""Start a coroutine now, and give it a task only if it has to wait.

Most requests (a publish to the embedded broker, a poll with something to
return) finish without ever waiting, so creating a task for each would cost
more than the request itself. This is what ``eager_start`` does on Python 3.12+;
written here with the await protocol so that 3.11 has it too.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Generator
from typing import Any

__all__ = ["start_eagerly"]

_HANDED_OVER = object()  # the task has taken the first pending future


def start_eagerly(coroutine: Coroutine[Any, Any, None]) -> asyncio.Task[None] | None:
    """Run ``coroutine`` up to its first real wait; returns the task that finishes it, if any.

    Exceptions raised before the first wait propagate to the caller, so pass a
    coroutine that handles its own errors.
    """
    try:
        waiting_on = coroutine.send(None)
    except StopIteration:
        return None
    return asyncio.get_running_loop().create_task(_Started(coroutine, waiting_on))


class _Started(Coroutine[Any, Any, None]):
    """A coroutine already running: the task's first step hands back what it waits on.

    Everything after that (values, exceptions, cancellation, even before the
    task's first step) is passed straight to the real coroutine.
    """

    __slots__ = ("_coroutine", "_waiting_on")

    def __init__(self, coroutine: Coroutine[Any, Any, None], waiting_on: Any) -> None:
        self._coroutine = coroutine
        self._waiting_on: Any = waiting_on

    def send(self, value: Any) -> Any:
        waiting_on, self._waiting_on = self._waiting_on, _HANDED_OVER
        if waiting_on is not _HANDED_OVER:
            return waiting_on  # the task now waits on what the coroutine waits on
        return self._coroutine.send(value)

    def throw(self, *args: Any) -> Any:
        self._waiting_on = _HANDED_OVER
        return self._coroutine.throw(*args)

    def close(self) -> None:
        self._coroutine.close()

    def __await__(self) -> Generator[Any, Any, None]:
        raise TypeError("a started coroutine is driven by its task, not awaited")
