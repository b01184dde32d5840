"""Monthly budgets: the check every generation makes first, and usage recording.

A tenant's ``monthlyBudgetUsd`` caps its spend over the calendar month (UTC); a tenant
without a row or without a budget is unlimited. Spend is read from the usage rows and
cached for a few seconds per tenant, so a busy tenant costs one query per few seconds;
recording usage through this service updates the cache at once, so the cap bites on
this node without waiting.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

from yamabiko.protocol.errors import BudgetExceeded
from yamabiko.schema.objects import TenantId, UsageEvent, UserId
from yamabiko.store.repositories import Store


def month_bounds(now: datetime) -> tuple[datetime, datetime]:
    """The calendar month (UTC) holding ``now``: [start, next start)."""
    start = now.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    if start.month == 12:
        return start, start.replace(year=start.year + 1, month=1)
    return start, start.replace(month=start.month + 1)


class Budget:
    def __init__(
        self,
        store: Store,
        *,
        cache_s: float = 5.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._store = store
        self._cache_s = cache_s
        self._clock = clock
        # tenant -> (month start, budget, spent, read at)
        self._cache: dict[str, tuple[datetime, float | None, float, float]] = {}

    async def _state(self, tenant_id: str) -> tuple[datetime, float | None, float]:
        start, end = month_bounds(self._clock())
        cached = self._cache.get(tenant_id)
        if (
            cached is not None
            and cached[0] == start
            and time.monotonic() - cached[3] < self._cache_s
        ):
            return cached[0], cached[1], cached[2]
        tenant = await self._store.tenants.get(TenantId(tenant_id))
        budget = tenant.monthly_budget_usd if tenant is not None else None
        spent = 0.0
        if budget is not None:
            spent = await self._store.usage.total_cost(TenantId(tenant_id), start=start, end=end)
        self._cache[tenant_id] = (start, budget, spent, time.monotonic())
        return start, budget, spent

    async def check(self, tenant_id: str) -> None:
        """Raise -32011 when the tenant's month is spent."""
        start, budget, spent = await self._state(tenant_id)
        if budget is not None and spent >= budget:
            _, resets = month_bounds(start)
            raise BudgetExceeded(
                f"monthly budget of ${budget:.2f} spent (${spent:.2f} this month)",
                {
                    "budgetUsd": budget,
                    "spentUsd": round(spent, 6),
                    "resetsAt": resets.isoformat().replace("+00:00", "Z"),
                },
            )

    async def record(
        self,
        tenant_id: str,
        user: str,
        model: str,
        *,
        input_tokens: int,
        output_tokens: int,
        cost_usd: float,
    ) -> UsageEvent:
        """Store one generation's usage and count it against the month at once."""
        event = await self._store.usage.record(
            TenantId(tenant_id),
            UserId(user),
            model,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cost_usd=cost_usd,
        )
        cached = self._cache.get(tenant_id)
        if cached is not None:
            self._cache[tenant_id] = (cached[0], cached[1], cached[2] + cost_usd, cached[3])
        return event
