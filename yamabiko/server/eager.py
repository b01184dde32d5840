"""Start a coroutine in the caller's turn and give it a task only if it has to wait.

A connection's reader used to be a new task per burst of messages: a task costs its
allocation, a turn of the loop before it runs, and (on Python 3.11) a place in
asyncio's weak set of all tasks, removed again by the garbage collector. For a lone
``ping`` that was about a tenth of the server's time per round trip. Most messages
(``ping``, ``initialize``, ghost edits, requests that start their own task) are done
without waiting, so the reader runs at once, inside ``data_received``, and becomes a
task only when it first waits (a full socket, the store).

Python 3.12 has this as ``asyncio.eager_task_factory``; 3.11 does not, so there the
first step is driven here, in a copy of the current context (as a task would run it),
and a coroutine that waits is handed to a task that goes on from where it stopped.
One difference remains on 3.11: during that first step ``asyncio.current_task()`` is
``None``, so code that a reader reaches before its first ``await`` that really
suspends must not need a current task (``asyncio.timeout`` does;
``asyncio.wait_for`` does not on 3.11).
"""

from __future__ import annotations

import asyncio
import contextvars
import sys
import types
from collections.abc import Coroutine, Generator
from typing import Any

_NATIVE = sys.version_info >= (3, 12)


def start_eagerly(
    loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, None]
) -> asyncio.Task[None] | None:
    """Run ``coro`` until it first waits; ``None`` if it finished without waiting, else
    the task that carries it on. An exception raised before it waits propagates."""
    if _NATIVE:  # pragma: no cover - the CI's Python is 3.11
        task: asyncio.Task[None] = asyncio.eager_task_factory(loop, coro)  # type: ignore[attr-defined]
        if task.done():
            task.result()
            return None
        return task
    context = contextvars.copy_context()
    try:
        waiting_on = context.run(coro.send, None)
    except StopIteration:
        return None
    return loop.create_task(_go_on(coro, waiting_on), context=context)


async def _go_on(coro: Coroutine[Any, Any, None], waiting_on: Any) -> None:
    await _resume(coro, waiting_on)


@types.coroutine
def _resume(coro: Coroutine[Any, Any, None], waiting_on: Any) -> Generator[Any, Any, None]:
    """Pass what ``coro`` waits on up to the task, and the task's answer (a value, or
    an exception such as its cancellation) back down, until ``coro`` returns."""
    while True:
        try:
            sent = yield waiting_on
        except BaseException as exc:
            try:
                waiting_on = coro.throw(exc)
            except StopIteration:
                return
        else:
            try:
                waiting_on = coro.send(sent)
            except StopIteration:
                return
