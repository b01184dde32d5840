"""The node's ghost-text engines and each user's personal model.

:class:`GhostModels` holds the engines by name and, per (tenant, user, engine), the
user's :class:`~yamabiko.engines.ghost.base.PersonalCounts`: read from the store on
first use, kept for ``cache_s`` (then read again, so that what the user accepted on
another node arrives), updated in place when the user accepts a suggestion here, and
written to the store in the background (a keystroke never waits for a write).
"""

from __future__ import annotations

import asyncio
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


class GhostModels:
    def __init__(
        self,
        store: Store,
        engines: Mapping[str, GhostEngine],
        *,
        stats: Stats | None = None,
        cache_s: float = 30.0,
        default: str = DEFAULT_ENGINE,
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
        self._writes: set[asyncio.Task[None]] = set()

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
        task = asyncio.get_running_loop().create_task(
            self._write(tenant, user, engine_name, counts)
        )
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def _write(self, tenant: str, user: str, engine: str, counts: list[Count]) -> None:
        try:
            await self._store.ghost_counts.add(
                TenantId(tenant),
                UserId(user),
                engine,
                [(c.context, c.token, c.count) for c in counts],
            )
        except Exception:
            log.warning("could not store a personal ghost model", exc_info=True)

    async def aclose(self) -> None:
        """Finish the pending writes (at shutdown, before the store closes)."""
        if self._writes:
            await asyncio.wait(set(self._writes), timeout=5.0)
