"""Monthly budgets: the check every generation makes first, and usage recording.

A tenant's ``monthlyBudgetUsd`` caps its spend over the calendar month (UTC); a tenant
without a row or without a budget is unlimited, and a budget of 0 allows nothing. The
spend is the sum of the month's usage rows, read from the store and cached per tenant
for ``cache_s`` seconds, so a busy tenant costs one pair of queries per few seconds
(concurrent checks on a stale entry share one read). Recording usage through
:meth:`Budget.record` adds to the cached spend at once, so the cap bites on this node
with the next check; other nodes see it when their cache entry expires.

The cap is checked before a generation, not during it: the generation that crosses it
finishes, and the next one is refused.
"""

from __future__ import annotations

import asyncio
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


def _iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


class _Spend:
    """One tenant's month as last read: its budget and what it has spent."""

    __slots__ = ("budget", "month", "read_at", "spent")

    def __init__(self, month: datetime, budget: float | None, spent: float, read_at: float):
        self.month = month
        self.budget = budget
        self.spent = spent
        self.read_at = read_at


class Budget:
    """The budget service: :meth:`check` before each generation, :meth:`record` after.

    ``clock`` (aware datetimes) decides the month and stamps recorded usage;
    ``monotonic`` (seconds) ages the cache. Both are for tests.
    """

    def __init__(
        self,
        store: Store,
        *,
        cache_s: float = 5.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._cache_s = cache_s
        self._clock = clock
        self._monotonic = monotonic
        self._cache: dict[str, _Spend] = {}
        self._reading: dict[tuple[str, datetime], asyncio.Task[_Spend]] = {}

    async def check(self, tenant_id: str) -> None:
        """Return if the tenant may spend; raise :class:`BudgetExceeded` (-32011, data
        ``{budgetUsd, spentUsd, resetsAt}``) when its month's spend has reached its
        budget. Store errors pass through."""
        month, resets = month_bounds(self._clock())
        spend = await self._spend(tenant_id, month, resets)
        if spend.budget is not None and spend.spent >= spend.budget:
            raise BudgetExceeded(
                f"monthly budget of ${spend.budget:.2f} spent: ${spend.spent:.2f} this month,"
                f" until {_iso(resets)}",
                {
                    "budgetUsd": spend.budget,
                    "spentUsd": round(spend.spent, 6),
                    "resetsAt": _iso(resets),
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
        """Store one generation's usage (stamped with ``clock``) and count it against
        the month on this node at once."""
        at = self._clock()
        event = await self._store.usage.record(
            TenantId(tenant_id),
            UserId(user),
            model,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cost_usd=cost_usd,
            at=at,
        )
        spend = self._cache.get(tenant_id)
        if spend is not None and spend.month == month_bounds(at)[0]:
            # A read in flight right now may miss this row; its result then undercounts
            # until the entry expires, as on any other node.
            spend.spent += cost_usd
        return event

    def forget(self, tenant_id: str) -> None:
        """Drop the cached month (the tenant's budget just changed on this node)."""
        self._cache.pop(tenant_id, None)

    async def _spend(self, tenant_id: str, month: datetime, resets: datetime) -> _Spend:
        spend = self._cache.get(tenant_id)
        if (
            spend is not None
            and spend.month == month
            and self._monotonic() - spend.read_at < self._cache_s
        ):
            return spend
        key = (tenant_id, month)
        task = self._reading.get(key)
        if task is None:
            task = asyncio.create_task(self._read(tenant_id, month, resets))
            self._reading[key] = task
            task.add_done_callback(lambda done: self._read_done(key, done))
        # Shielded: a cancelled check does not cancel the read the others wait for.
        return await asyncio.shield(task)

    async def _read(self, tenant_id: str, month: datetime, resets: datetime) -> _Spend:
        read_at = self._monotonic()
        tenant = await self._store.tenants.get(TenantId(tenant_id))
        budget = tenant.monthly_budget_usd if tenant is not None else None
        spent = 0.0
        if budget is not None:
            spent = await self._store.usage.total_cost(TenantId(tenant_id), start=month, end=resets)
        spend = _Spend(month, budget, spent, read_at)
        self._cache[tenant_id] = spend
        return spend

    def _read_done(self, key: tuple[str, datetime], task: asyncio.Task[_Spend]) -> None:
        if self._reading.get(key) is task:
            del self._reading[key]
        if not task.cancelled():
            task.exception()  # retrieved: each waiter has it raised; none may be left
