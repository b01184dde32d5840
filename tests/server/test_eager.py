"""The eager start of a connection's reader (server/eager.py)."""

from __future__ import annotations

import asyncio
import contextvars

import pytest

from yamabiko.server.eager import start_eagerly

VAR: contextvars.ContextVar[str] = contextvars.ContextVar("VAR", default="outside")


async def test_a_coroutine_that_never_waits_runs_at_once_and_needs_no_task() -> None:
    ran: list[str] = []

    async def work() -> None:
        ran.append("done")

    assert start_eagerly(asyncio.get_running_loop(), work()) is None
    assert ran == ["done"]


async def test_a_coroutine_that_waits_goes_on_in_a_task_with_the_values_it_awaited() -> None:
    loop = asyncio.get_running_loop()
    first: asyncio.Future[int] = loop.create_future()
    seen: list[object] = []

    async def work() -> None:
        seen.append("started")
        seen.append(await first)
        await asyncio.sleep(0)
        try:
            await loop.create_future()  # never done: only a failure ends it
        except ZeroDivisionError as exc:  # pragma: no cover - not thrown here
            seen.append(exc)

    task = start_eagerly(loop, work())
    assert seen == ["started"]  # ran up to the first wait, in the caller's turn
    assert task is not None
    first.set_result(7)
    for _ in range(3):
        await asyncio.sleep(0)
    assert seen == ["started", 7]
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_cancelling_the_task_reaches_the_coroutine() -> None:
    loop = asyncio.get_running_loop()
    cleaned: list[str] = []

    async def work() -> None:
        try:
            await loop.create_future()
        except asyncio.CancelledError:
            cleaned.append("cancelled")
            raise

    task = start_eagerly(loop, work())
    assert task is not None
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cleaned == ["cancelled"]


async def test_context_changes_stay_with_the_coroutine_as_in_a_task() -> None:
    loop = asyncio.get_running_loop()
    gate: asyncio.Future[None] = loop.create_future()
    seen: list[str] = []

    async def work() -> None:
        VAR.set("inside")
        await gate
        seen.append(VAR.get())

    task = start_eagerly(loop, work())
    assert VAR.get() == "outside"  # the caller's context is untouched
    gate.set_result(None)
    assert task is not None
    await task
    assert seen == ["inside"]


async def test_an_exception_before_the_first_wait_reaches_the_caller() -> None:
    async def work() -> None:
        raise ValueError("bad")

    with pytest.raises(ValueError, match="bad"):
        start_eagerly(asyncio.get_running_loop(), work())
