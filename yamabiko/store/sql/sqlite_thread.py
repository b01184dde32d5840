"""One ``sqlite3`` connection on a thread of its own, handed work by the event loop.

This replaces aiosqlite, which offers one statement per hand-off through its public
API (a statement and closing its cursor are two trips to its thread, each waiting for
the loop to pick the result up). Here the unit handed over is a function of the
connection, so a statement, its rows and its cursor's cleanup are one trip, and the
whole thing is ours: the standard library's ``sqlite3`` and ``threading``, no private
attribute of anybody's package.

A trip costs a put on a queue, the thread's turn, and a ``call_soon_threadsafe`` to
settle the future on the loop. Results that come back while the loop has not yet
taken the last one are settled together, with one wake-up of the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sqlite3
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

Job = Callable[[sqlite3.Connection], Any]
_Item = tuple[asyncio.Future[Any], Job] | None


class SqliteThread:
    """The connection and the thread that alone uses it."""

    def __init__(self, loop: asyncio.AbstractEventLoop, connect: Callable[[], sqlite3.Connection]):
        self._loop = loop
        self._jobs: queue.SimpleQueue[_Item] = queue.SimpleQueue()
        self._done: list[tuple[asyncio.Future[Any], Any, BaseException | None]] = []
        self._done_lock = threading.Lock()
        self._ready: asyncio.Future[None] = loop.create_future()
        self._closed = False
        self._in_transaction = False
        self._thread = threading.Thread(
            target=self._work, args=(connect,), name="yamabiko-sqlite", daemon=True
        )

    @classmethod
    async def start(cls, connect: Callable[[], sqlite3.Connection]) -> SqliteThread:
        """Open the connection (on the new thread: sqlite3 objects stay on one thread)."""
        self = cls(asyncio.get_running_loop(), connect)
        self._thread.start()
        await self._ready
        return self

    @property
    def in_transaction(self) -> bool:
        """Whether a transaction was open after the last job (read on the thread)."""
        return self._in_transaction

    async def run(self, job: Callable[[sqlite3.Connection], T]) -> T:
        """``job(connection)`` on the thread; its result, or its exception raised here."""
        if self._closed:
            raise sqlite3.ProgrammingError("Cannot operate on a closed database.")
        future: asyncio.Future[T] = self._loop.create_future()
        self._jobs.put((future, job))
        return await future

    async def close(self) -> None:
        """Finish the jobs already handed over, close the connection, end the thread."""
        if self._closed:
            return
        self._closed = True
        self._jobs.put(None)
        await asyncio.to_thread(self._thread.join)

    # On the thread

    def _work(self, connect: Callable[[], sqlite3.Connection]) -> None:
        try:
            conn = connect()
        except BaseException as exc:
            self._loop.call_soon_threadsafe(_settle, self._ready, None, exc)
            return
        self._loop.call_soon_threadsafe(_settle, self._ready, None, None)
        jobs = self._jobs
        try:
            while (item := jobs.get()) is not None:
                future, job = item
                result: Any = None
                error: BaseException | None = None
                try:
                    result = job(conn)
                except BaseException as exc:
                    error = exc
                self._in_transaction = conn.in_transaction
                self._hand_back(future, result, error)
        finally:
            conn.close()

    def _hand_back(
        self, future: asyncio.Future[Any], result: Any, error: BaseException | None
    ) -> None:
        with self._done_lock:
            wake = not self._done
            self._done.append((future, result, error))
        if wake:
            # A closed loop (RuntimeError) has nobody waiting any more.
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._settle_done)

    # On the loop

    def _settle_done(self) -> None:
        with self._done_lock:
            done, self._done = self._done, []
        for future, result, error in done:
            _settle(future, result, error)


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():  # the caller was cancelled; the job ran anyway
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
