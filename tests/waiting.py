"""Waiting for a condition in tests: the one poll loop every suite uses.

End-to-end tests wait for events, not fixed sleeps. When the event cannot be
awaited directly (a subscriber count, a callback's list), they poll it with
:func:`wait_until`, or :func:`wait_until_sync` where no event loop runs.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar, overload

__all__ = ["wait_until", "wait_until_sync"]

T = TypeVar("T")
Description = str | Callable[[], str]


@overload
async def wait_until(
    predicate: Callable[[], Awaitable[T]],
    *,
    timeout_seconds: float = ...,
    interval_seconds: float = ...,
    message: Description = ...,
) -> T: ...


@overload
async def wait_until(
    predicate: Callable[[], T],
    *,
    timeout_seconds: float = ...,
    interval_seconds: float = ...,
    message: Description = ...,
) -> T: ...


async def wait_until(
    predicate: Callable[[], object],
    *,
    timeout_seconds: float = 5.0,
    interval_seconds: float = 0.01,
    message: Description = "the condition",
) -> object:
    """Call ``predicate`` (plain or async) every ``interval_seconds`` until it returns a
    truthy value, and return that value.

    ``message`` says what is awaited ("three messages"); a callable is called only on
    failure, so it can describe the state at that moment (a server's log).

    Raises:
        AssertionError: still falsy after ``timeout_seconds``; names ``message`` and
            the last value. An exception from ``predicate`` propagates at once.
    """
    deadline = time.monotonic() + timeout_seconds
    while True:
        value = predicate()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(_timed_out(message, timeout_seconds, value))
        await asyncio.sleep(interval_seconds)


def wait_until_sync(
    predicate: Callable[[], T],
    *,
    timeout_seconds: float = 5.0,
    interval_seconds: float = 0.01,
    message: Description = "the condition",
) -> T:
    """:func:`wait_until` for code without an event loop: blocks the thread meanwhile.

    ``predicate`` must be a plain function here.

    Raises:
        AssertionError: still falsy after ``timeout_seconds``.
    """
    deadline = time.monotonic() + timeout_seconds
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(_timed_out(message, timeout_seconds, value))
        time.sleep(interval_seconds)


def _timed_out(message: Description, timeout_seconds: float, value: object) -> str:
    what = message() if callable(message) else message
    text = f"timed out after {timeout_seconds:g} s waiting for {what}"
    # A bare False or None says nothing; a count, a list or a state object might.
    if value is not None and not isinstance(value, bool):
        text += f" (last value: {value!r})"
    return text
