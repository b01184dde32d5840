"""A session's subscriptions: one forwarding task per stream it reads.

The session owns them (docs/development.md, Layout) but knows nothing of streams: a handler
hands :meth:`Subscriptions.start` a coroutine that reads a stream and pushes its items
into the session's outbound queue, and the session keeps it by key (the stream id),
bounds how many run (``maxSubscriptions``), stops one on request and stops all of them
when the connection goes. A forwarder that ends by itself (its stream ended) drops its
key at once, so the slot is free again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Hashable
from typing import Any

from yamabiko.protocol import errors


class Subscriptions:
    __slots__ = ("_tasks", "limit")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._tasks: dict[Hashable, asyncio.Task[None]] = {}

    def __contains__(self, key: Hashable) -> bool:
        return key in self._tasks

    def __len__(self) -> int:
        return len(self._tasks)

    def check_room(self, key: Hashable | None = None) -> None:
        """Raise unless :meth:`start` with ``key`` (None: a new one) would succeed now:
        -32009 if it is taken, -32029 (``limit: maxSubscriptions``) if the session has
        no room."""
        if key is not None and key in self._tasks:
            raise errors.Conflict(f"already subscribed to {key}: unsubscribe first")
        if len(self._tasks) >= self.limit:
            raise errors.RateLimited(
                1000,
                f"too many subscriptions (limit {self.limit})",
                limit="maxSubscriptions",
            )

    def start(self, key: Hashable, forwarder: Coroutine[Any, Any, None]) -> None:
        """Run ``forwarder`` under ``key``; raises as :meth:`check_room` (closing the
        coroutine unstarted)."""
        try:
            self.check_room(key)
        except errors.YamabikoError:
            forwarder.close()
            raise
        task = asyncio.get_running_loop().create_task(forwarder)
        self._tasks[key] = task
        task.add_done_callback(lambda done: self._done(key, done))

    def stop(self, key: Hashable) -> bool:
        """Stop forwarding ``key``; False if it was not running."""
        task = self._tasks.pop(key, None)
        if task is None:
            return False
        task.cancel()
        return True

    def close(self) -> None:
        """Stop every forwarder (the session is closing)."""
        tasks, self._tasks = self._tasks, {}
        for task in tasks.values():
            task.cancel()

    def _done(self, key: Hashable, task: asyncio.Task[None]) -> None:
        if self._tasks.get(key) is task:
            del self._tasks[key]
