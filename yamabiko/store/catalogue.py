"""The model catalogue as each tenant sees it, cached: ``chat/send`` resolves one to
nine names per message, and the catalogue changes rarely.

An entry (or a name's absence) is kept ``ttl_s``; a change through the admin API applies
at once on the node that made it (:meth:`CachedCatalogue.forget`) and on every other
within ``ttl_s``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Final

from yamabiko.schema.objects import ModelEntry, TenantId
from yamabiko.store.repositories import Store

_MAX_ENTRIES: Final = 10_000


class CachedCatalogue:
    def __init__(
        self, store: Store, *, ttl_s: float = 5.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._store = store
        self._ttl_s = ttl_s
        self._clock = clock
        self._cache: dict[tuple[str, str], tuple[float, ModelEntry | None]] = {}

    async def get(self, tenant_id: str, name: str) -> ModelEntry | None:
        """What ``name`` (an id or an alias) means to the tenant, or None."""
        key = (tenant_id, name)
        now = self._clock()
        cached = self._cache.get(key)
        if cached is not None and now - cached[0] < self._ttl_s:
            return cached[1]
        entry = await self._store.models.get(TenantId(tenant_id), name)
        if len(self._cache) >= _MAX_ENTRIES:
            self._cache = {k: v for k, v in self._cache.items() if now - v[0] < self._ttl_s}
        self._cache[key] = (now, entry)
        return entry

    def forget(self, tenant_id: str | None) -> None:
        """Drop the tenant's cached names (None: every tenant's, after a change to the
        global catalogue)."""
        if tenant_id is None:
            self._cache.clear()
        else:
            self._cache = {k: v for k, v in self._cache.items() if k[0] != tenant_id}
