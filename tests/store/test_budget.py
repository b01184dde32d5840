"""The monthly budget service, on each store backend.

The budget's clock is fixed in the middle of a month (so no run straddles a month's
end), and recorded usage is stamped with it; its cache ages on a clock of its own.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from tests.store.conftest import ACME, ALICE, BOB, GLOBEX
from yamabiko.protocol.errors import BUDGET_EXCEEDED, BudgetExceeded
from yamabiko.schema.objects import TenantId
from yamabiko.store import Store
from yamabiko.store.budget import Budget, month_bounds

MID_MARCH = datetime(2026, 3, 15, 12, 0, tzinfo=UTC)


class Clocks:
    def __init__(self) -> None:
        self.now = MID_MARCH
        self.seconds = 100.0

    def budget(self, store: Store) -> Budget:
        return Budget(store, clock=lambda: self.now, monotonic=lambda: self.seconds)


async def spend(store: Store, tenant: TenantId, *costs: float, at: datetime = MID_MARCH) -> None:
    """Usage rows recorded straight into the store (by another node, say)."""
    for cost in costs:
        await store.usage.record(
            tenant, ALICE, "openai/a", input_tokens=10, output_tokens=20, cost_usd=cost, at=at
        )


async def test_a_spent_month_is_refused_until_the_next(store: Store) -> None:
    clocks = Clocks()
    budget = clocks.budget(store)
    await store.tenants.create(tenant_id=ACME, name="Acme", monthly_budget_usd=1.0)
    await spend(store, ACME, 0.5, 0.49)
    await spend(store, ACME, 5.0, at=datetime(2026, 2, 28, 23, 59, tzinfo=UTC))  # February
    await spend(store, GLOBEX, 5.0)  # someone else's
    await budget.check(ACME)  # $0.99 of $1

    event = await budget.record(
        ACME, BOB, "openai/a", input_tokens=100, output_tokens=200, cost_usd=0.02
    )
    assert (event.tenant_id, event.user, event.model) == (ACME, BOB, "openai/a")
    assert (event.input_tokens, event.output_tokens, event.cost_usd) == (100, 200, 0.02)
    assert event.at == MID_MARCH  # stamped with the budget's clock
    with pytest.raises(BudgetExceeded) as info:
        await budget.check(ACME)  # at once: the cache (never stale here) was updated
    assert info.value.code == BUDGET_EXCEEDED == -32011
    assert info.value.data == {
        "budgetUsd": 1.0,
        "spentUsd": pytest.approx(1.01),
        "resetsAt": "2026-04-01T00:00:00Z",
    }
    assert "$1.00" in info.value.message
    assert "$1.01" in info.value.message

    clocks.now = datetime(2026, 4, 1, tzinfo=UTC)  # a new month, the cache no help
    await budget.check(ACME)
    clocks.now = datetime(2026, 3, 31, 23, 59, 59, tzinfo=UTC)  # back: still spent
    with pytest.raises(BudgetExceeded):
        await budget.check(ACME)


async def test_reaching_the_budget_exactly_is_spent(store: Store) -> None:
    clocks = Clocks()
    await store.tenants.create(tenant_id=ACME, name="Acme", monthly_budget_usd=1.0)
    await spend(store, ACME, 0.25, 0.75)
    with pytest.raises(BudgetExceeded):
        await clocks.budget(store).check(ACME)


async def test_no_budget_or_no_tenant_is_unlimited(store: Store) -> None:
    clocks = Clocks()
    budget = clocks.budget(store)
    await store.tenants.create(tenant_id=ACME, name="Acme")
    await spend(store, ACME, 1e6)
    await spend(store, GLOBEX, 1e6)  # Globex has no row at all
    for _ in range(2):
        await budget.check(ACME)
        await budget.check(GLOBEX)
        await budget.record(ACME, ALICE, "m", input_tokens=1, output_tokens=1, cost_usd=1e6)
        clocks.seconds += 10


async def test_a_budget_of_zero_allows_nothing(store: Store) -> None:
    await store.tenants.create(tenant_id=ACME, name="Acme", monthly_budget_usd=0.0)
    with pytest.raises(BudgetExceeded) as info:
        await Clocks().budget(store).check(ACME)
    assert info.value.data["spentUsd"] == 0.0


async def test_other_nodes_spend_shows_when_the_cache_expires(store: Store) -> None:
    clocks = Clocks()
    budget = clocks.budget(store)
    await store.tenants.create(tenant_id=ACME, name="Acme", monthly_budget_usd=1.0)
    await budget.check(ACME)
    await spend(store, ACME, 2.0)  # recorded by another node
    clocks.seconds += 4.9
    await budget.check(ACME)  # still the cached $0
    clocks.seconds += 0.2
    with pytest.raises(BudgetExceeded):
        await budget.check(ACME)


async def test_a_changed_budget_is_read_again_after_forget(store: Store) -> None:
    clocks = Clocks()
    budget = clocks.budget(store)
    await store.tenants.create(tenant_id=ACME, name="Acme", monthly_budget_usd=1.0)
    await spend(store, ACME, 1.5)
    with pytest.raises(BudgetExceeded):
        await budget.check(ACME)
    await store.tenants.update(ACME, monthly_budget_usd=2.0)
    budget.forget(ACME)
    await budget.check(ACME)


async def test_a_busy_tenant_costs_one_read_per_cache_period(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    clocks = Clocks()
    budget = clocks.budget(store)
    await store.tenants.create(tenant_id=ACME, name="Acme", monthly_budget_usd=1.0)
    reads: list[str] = []
    total_cost = store.usage.total_cost

    async def counted(tenant_id: str, **kwargs: datetime) -> float:
        reads.append(tenant_id)
        await asyncio.sleep(0)  # let the other checks arrive while this one reads
        return await total_cost(tenant_id, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(store.usage, "total_cost", counted)
    await asyncio.gather(*(budget.check(ACME) for _ in range(20)))  # concurrent: one read
    await asyncio.gather(*(budget.check(ACME) for _ in range(20)))  # cached: none
    assert reads == [ACME]
    clocks.seconds += 5.0
    await asyncio.gather(*(budget.check(ACME) for _ in range(20)))
    assert reads == [ACME, ACME]


async def test_a_cancelled_check_does_not_cancel_the_read_others_wait_for(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    budget = Clocks().budget(store)
    await store.tenants.create(tenant_id=ACME, name="Acme", monthly_budget_usd=1.0)
    await spend(store, ACME, 1.0)
    gate = asyncio.Event()
    total_cost = store.usage.total_cost

    async def slow(tenant_id: str, **kwargs: datetime) -> float:
        await gate.wait()
        return await total_cost(tenant_id, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(store.usage, "total_cost", slow)
    first = asyncio.create_task(budget.check(ACME))
    second = asyncio.create_task(budget.check(ACME))
    await asyncio.sleep(0)
    first.cancel()
    gate.set()
    async with asyncio.timeout(5):
        with pytest.raises(asyncio.CancelledError):
            await first
        with pytest.raises(BudgetExceeded):
            await second


def test_month_bounds() -> None:
    assert month_bounds(datetime(2026, 12, 31, 23, 59, tzinfo=UTC)) == (
        datetime(2026, 12, 1, tzinfo=UTC),
        datetime(2027, 1, 1, tzinfo=UTC),
    )
    assert month_bounds(datetime(2026, 3, 1, tzinfo=UTC)) == (
        datetime(2026, 3, 1, tzinfo=UTC),
        datetime(2026, 4, 1, tzinfo=UTC),
    )
