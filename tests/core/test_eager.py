"""start_eagerly: coroutines run at once, and get a task only when they must wait."""

from __future__ import annotations

import asyncio

import pytest

from pushwire.core.eager import start_eagerly


async def test_a_coroutine_that_never_waits_finishes_at_once_without_a_task() -> None:
    done: list[str] = []

    async def quick() -> None:
        done.append("ran")

    task = start_eagerly(quick())

    assert task is None
    assert done == ["ran"]


async def test_a_coroutine_that_waits_runs_eagerly_then_finishes_in_a_task() -> None:
    steps: list[str] = []
    gate: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def slow() -> None:
        steps.append("before")
        steps.append(await gate)
        await asyncio.sleep(0)
        steps.append("after")

    task = start_eagerly(slow())
    assert steps == ["before"]
    gate.set_result("value")
    assert task is not None
    await asyncio.wait_for(task, 5)

    assert steps == ["before", "value", "after"]


async def test_errors_after_the_first_wait_end_up_in_the_task() -> None:
    async def failing() -> None:
        await asyncio.sleep(0)
        raise ValueError("late")

    task = start_eagerly(failing())

    assert task is not None
    with pytest.raises(ValueError, match="late"):
        await task


async def test_cancelling_the_task_cancels_inside_the_coroutine() -> None:
    seen: list[str] = []

    async def waiting() -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise

    task = start_eagerly(waiting())
    assert task is not None
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert seen == ["cancelled"]


async def test_a_bare_yield_first_wait_still_completes() -> None:
    steps: list[int] = []

    async def yielding() -> None:
        steps.append(1)
        await asyncio.sleep(0)
        steps.append(2)

    task = start_eagerly(yielding())
    assert task is not None
    await asyncio.wait_for(task, 5)

    assert steps == [1, 2]
