"""The tests' shared poll loop (tests/waiting.py)."""

from __future__ import annotations

import pytest

from tests.waiting import wait_until, wait_until_sync


async def test_wait_until_returns_the_first_truthy_value() -> None:
    values = iter([0, 0, 3])

    result = await wait_until(lambda: next(values), interval_seconds=0)

    assert result == 3


async def test_wait_until_awaits_an_async_predicate() -> None:
    calls: list[int] = []

    async def third_call() -> bool:
        calls.append(1)
        return len(calls) == 3

    result = await wait_until(third_call, interval_seconds=0)

    assert result is True
    assert len(calls) == 3


async def test_wait_until_fails_with_the_message_and_the_last_value() -> None:
    with pytest.raises(AssertionError) as failure:
        await wait_until(lambda: [], timeout_seconds=0.05, message="a message")

    assert str(failure.value) == "timed out after 0.05 s waiting for a message (last value: [])"


async def test_a_message_callable_is_called_only_on_failure() -> None:
    described: list[int] = []

    def describe() -> str:
        described.append(1)
        return "the log"

    await wait_until(lambda: True, message=describe)
    with pytest.raises(AssertionError, match=r"waiting for the log$"):
        await wait_until(lambda: False, timeout_seconds=0.02, message=describe)

    assert described == [1]


def test_wait_until_sync_polls_until_true_then_gives_up_at_the_timeout() -> None:
    values = iter([None, "ready"])

    result = wait_until_sync(lambda: next(values), interval_seconds=0)

    assert result == "ready"
    with pytest.raises(AssertionError, match=r"timed out after 0\.02 s waiting for the condition$"):
        wait_until_sync(lambda: None, timeout_seconds=0.02)
