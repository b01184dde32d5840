"""The node's ghost-text engines and each user's personal model.

:class:`GhostModels` holds the engines by name and, per (tenant, user, engine), the
user's :class:`~yamabiko.engines.ghost.base.PersonalCounts`: read from the store on
first use, kept for ``cache_s`` (then read again, so that what the user accepted on
another node arrives), updated in place when the user accepts a suggestion here, and
written to the store in the background (a keystroke never waits for a write).

Writes are coalesced: what is learned is summed per (tenant, user, engine) and
(context, token), and written every ``flush_s`` in one transaction per (tenant, user,
engine), or sooner once :data:`MAX_PENDING_ROWS` rows wait. A flood of feedback makes
a few writes a second, not one each; a crash loses at most ``flush_s`` of learning.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from typing import Final

from yamabiko.engines.ghost.base import Count, GhostEngine, GhostRequest, PersonalCounts
from yamabiko.protocol import errors
from yamabiko.schema.objects import TenantId, UserId
from yamabiko.sessions.stats import Stats
from yamabiko.store import Store

log = logging.getLogger("yamabiko.ghost")

DEFAULT_ENGINE: Final = "ngram"
_MAX_USERS: Final = 10_000
FLUSH_S: Final = 1.0
MAX_PENDING_ROWS: Final = 10_000
"""Rows waiting to be written past which a flush starts at once (bounds memory)."""

Key = tuple[str, str, str]
"""(tenant, user, engine)."""


class GhostModels:
    def __init__(
        self,
        store: Store,
        engines: Mapping[str, GhostEngine],
        *,
        stats: Stats | None = None,
        cache_s: float = 30.0,
        default: str = DEFAULT_ENGINE,
        flush_s: float = FLUSH_S,
    ) -> None:
        if default not in engines:
            raise ValueError(f"the default ghost engine {default!r} is not configured")
        self._store = store
        self.engines = dict(engines)
        self.default = default
        self.stats = stats or Stats()
        self._cache_s = cache_s
        self._personal: dict[tuple[str, str, str], tuple[float, PersonalCounts]] = {}
        self._loading: dict[tuple[str, str, str], asyncio.Task[PersonalCounts]] = {}
        self._flush_s = flush_s
        self._pending: dict[Key, dict[tuple[str, str], int]] = {}
        self._pending_rows = 0
        self._full = asyncio.Event()
        self._flush: asyncio.Task[None] | None = None

    def engine(self, name: str) -> GhostEngine:
        """The engine called ``name``; -32010 if this server has none by that name."""
        engine = self.engines.get(name)
        if engine is None:
            configured = ", ".join(sorted(self.engines))
            raise errors.EngineUnavailable(
                f"ghost engine {name!r} is not configured on this server (it has: {configured})"
            )
        return engine

    async def personal(self, tenant: str, user: str, engine: str) -> PersonalCounts:
        """The user's counts for ``engine`` (cached; concurrent first reads share one)."""
        key = (tenant, user, engine)
        cached = self._personal.get(key)
        if cached is not None and time.monotonic() - cached[0] < self._cache_s:
            return cached[1]
        task = self._loading.get(key)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._load(key, cached))
            self._loading[key] = task
            task.add_done_callback(lambda _: self._loading.pop(key, None))
        if cached is not None:
            # Stale: serve what we have; the fresh read lands for the next keystroke.
            return cached[1]
        return await asyncio.shield(task)

    async def _load(
        self, key: tuple[str, str, str], cached: tuple[float, PersonalCounts] | None
    ) -> PersonalCounts:
        tenant, user, engine = key
        try:
            rows = await self._store.ghost_counts.load(TenantId(tenant), UserId(user), engine)
        except Exception:
            # Suggestions go on without the personal model (or with the one we had).
            log.warning("could not read a personal ghost model", exc_info=True)
            return cached[1] if cached is not None else PersonalCounts()
        counts = PersonalCounts(Count(c, t, n) for c, t, n in rows)
        self._personal[key] = (time.monotonic(), counts)
        if len(self._personal) > _MAX_USERS:
            del self._personal[next(iter(self._personal))]
        return counts

    async def learn(
        self, tenant: str, user: str, engine_name: str, request: GhostRequest, accepted: str
    ) -> None:
        """Teach the user's model that ``accepted`` followed ``request``'s text: at once
        on this node, and in the store in the background."""
        engine = self.engines.get(engine_name)
        if engine is None or not accepted:
            return
        counts = engine.learn(request, accepted)
        if not counts:
            return
        (await self.personal(tenant, user, engine_name)).add(counts)
        if self._pending_rows >= 2 * MAX_PENDING_ROWS:
            # The store is not keeping up: this node remembers it, the store misses it.
            log.warning("personal ghost counts not stored: too many waiting")
            return
        rows = self._pending.setdefault((tenant, user, engine_name), {})
        for c in counts:
            key = (c.context, c.token)
            if key not in rows:
                self._pending_rows += 1
            rows[key] = rows.get(key, 0) + c.count
        if self._pending_rows >= MAX_PENDING_ROWS:
            self._full.set()
        if self._flush is None:
            self._flush = asyncio.get_running_loop().create_task(self._flush_later())

    async def _flush_later(self) -> None:
        """Write what is pending after ``flush_s`` (sooner when full); one at a time."""
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._full.wait(), self._flush_s)
            pending, self._pending, self._pending_rows = self._pending, {}, 0
            self._full.clear()
            await self._write(pending)
        finally:
            self._flush = None
        if self._pending:
            self._flush = asyncio.get_running_loop().create_task(self._flush_later())

    async def _write(self, pending: dict[Key, dict[tuple[str, str], int]]) -> None:
        for (tenant, user, engine), rows in pending.items():
            try:
                await self._store.ghost_counts.add(
                    TenantId(tenant),
                    UserId(user),
                    engine,
                    [(context, token, count) for (context, token), count in rows.items()],
                )
            except Exception:
                log.warning("could not store a personal ghost model", exc_info=True)
            self.stats.ghost_count_writes += 1

    async def aclose(self) -> None:
        """Write what is pending now (at shutdown, before the store closes)."""
        for _ in range(3):  # what arrived during a flush gets one more
            flush = self._flush
            if flush is None:
                return
            self._full.set()
            await asyncio.wait({flush}, timeout=5.0)
